"""Live-stream slots: at most N per user, a lapsed slot taken over, a lost lease not renewed, a released slot free."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from grader.store import stream_slots
from grader.store.db import session_scope
from grader.store.models import StreamSlot, User, utcnow
from tests.factories import make_world


def _alice_id() -> int:
    with session_scope() as db:
        return db.scalar(select(User.id).where(User.email == "alice@example.edu"))


def test_slots_are_limited_lapse_renew_and_come_back(clean_db):
    make_world()
    user_id = _alice_id()
    leases = [stream_slots.acquire(user_id, 3) for _ in range(3)]
    assert sorted(lease.slot for lease in leases) == [0, 1, 2]
    assert stream_slots.acquire(user_id, 3) is None
    assert all(stream_slots.renew(lease) for lease in leases)

    with session_scope() as db:  # slot 1's server died: its lease ran out
        db.execute(update(StreamSlot).where(StreamSlot.user_id == user_id, StreamSlot.slot == 1)
                   .values(expires_at=utcnow() - timedelta(seconds=1)))
    taken = stream_slots.acquire(user_id, 3)
    assert taken is not None and taken.slot == 1 and taken.holder != leases[1].holder
    assert not stream_slots.renew(leases[1])  # the lapsed lease went to another stream
    assert stream_slots.renew(taken)

    stream_slots.release(leases[1])  # not its slot any more: nothing given back
    assert stream_slots.acquire(user_id, 3) is None
    stream_slots.release(leases[0])
    again = stream_slots.acquire(user_id, 3)
    assert again is not None and again.slot == 0
