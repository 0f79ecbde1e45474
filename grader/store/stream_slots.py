"""Slots of live progress streams: a user holds at most N at once, across every API process.

A slot is a row (user, slot number) with a holder id and a lease the stream renews while it lives; a stream
that ends gives its slot back, and a slot whose server died lapses when its lease runs out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from grader.store.db import get_engine
from grader.store.models import StreamSlot, utcnow

LEASE_SECONDS = 60.0  # a crashed server's slots are free again after this
RENEW_SECONDS = 20.0  # a live stream renews its lease this often


# Built once: every stream opens, renews and gives back a slot, and building a statement cost more than running it.
_HELD = select(StreamSlot.slot, StreamSlot.expires_at).where(StreamSlot.user_id == bindparam("user_id"),
                                                            StreamSlot.slot < bindparam("slots"))
_NEW_LEASE = {"holder": bindparam("new_holder"), "expires_at": bindparam("new_expires_at")}
# (an UPDATE's bound parameters may not be named like its columns)
_TAKE_LAPSED = update(StreamSlot).where(StreamSlot.user_id == bindparam("b_user_id"),
                                        StreamSlot.slot == bindparam("b_slot"), StreamSlot.expires_at < bindparam("now")
                                        ).values(**_NEW_LEASE)
_INSERT = StreamSlot.__table__.insert()
_THIS_LEASE = (StreamSlot.user_id == bindparam("b_user_id"), StreamSlot.slot == bindparam("b_slot"),
               StreamSlot.holder == bindparam("b_holder"))
_RENEW = update(StreamSlot).where(*_THIS_LEASE).values(expires_at=bindparam("new_expires_at"))
_RELEASE = delete(StreamSlot).where(*_THIS_LEASE)


@dataclass(frozen=True)
class StreamLease:
    user_id: int
    slot: int
    holder: str


def held(connection: Connection, user_id: int, slots: int) -> dict[int, datetime]:
    """The user's slots below `slots` that have a holder, and when each lease ends; read on the caller's connection
    (the API reads it in the stream request's own transaction, saving one of its own)."""
    return dict(connection.execute(_HELD, {"user_id": user_id, "slots": slots}).all())


def may_take(held_slots: dict[int, datetime], slots: int) -> bool:
    """Whether a slot is free or lapsed in `held_slots` (as `held` read them)."""
    now = utcnow()
    return any(slot not in held_slots or held_slots[slot] < now for slot in range(slots))


def acquire(user_id: int, slots: int, held_slots: dict[int, datetime] | None = None) -> StreamLease | None:
    """A free (or lapsed) slot of the user, or None when all `slots` are held by live streams.

    One read first (or `held_slots`, that read done by the caller): a client refused a stream tries again every few
    seconds, and trying each slot in turn cost a refusal six transactions and three failed inserts."""
    holder = secrets.token_hex(16)
    if held_slots is None:
        with get_engine().connect() as connection:
            held_slots = held(connection, user_id, slots)
    now = utcnow()
    for slot in range(slots):
        if slot in held_slots and held_slots[slot] >= now:
            continue  # held by a live stream
        if _take(user_id, slot, holder, now, lapsed=slot in held_slots):
            return StreamLease(user_id, slot, holder)
    return None


def _take(user_id: int, slot: int, holder: str, now: datetime, *, lapsed: bool) -> bool:
    """Take over the lapsed slot, or insert the free one; False when another stream took it first."""
    expires_at = now + timedelta(seconds=LEASE_SECONDS)
    try:
        with get_engine().begin() as connection:
            if lapsed:
                return connection.execute(_TAKE_LAPSED, {"b_user_id": user_id, "b_slot": slot, "now": now,
                                                         "new_holder": holder, "new_expires_at": expires_at}
                                          ).rowcount == 1
            connection.execute(_INSERT, {"user_id": user_id, "slot": slot, "holder": holder, "expires_at": expires_at})
            return True
    except IntegrityError:
        return False


def renew(lease: StreamLease) -> bool:
    """Extend the lease; False when the slot was lost (lapsed and taken by another stream)."""
    with get_engine().begin() as connection:
        expires_at = utcnow() + timedelta(seconds=LEASE_SECONDS)
        return connection.execute(_RENEW, {**_lease_parameters(lease), "new_expires_at": expires_at}).rowcount == 1


def release(lease: StreamLease) -> None:
    with get_engine().begin() as connection:
        connection.execute(_RELEASE, _lease_parameters(lease))


def _lease_parameters(lease: StreamLease) -> dict:
    return {"b_user_id": lease.user_id, "b_slot": lease.slot, "b_holder": lease.holder}
