"""Slots of live progress streams: a user holds at most N at once, across every API process.

A slot is a row (user, slot number) with a holder id and a lease the stream renews while it lives; a stream
that ends gives its slot back, and a slot whose server died lapses when its lease runs out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from grader.store.db import get_engine
from grader.store.models import StreamSlot, utcnow

LEASE_SECONDS = 60.0  # a crashed server's slots are free again after this
RENEW_SECONDS = 20.0  # a live stream renews its lease this often


@dataclass(frozen=True)
class StreamLease:
    user_id: int
    slot: int
    holder: str


def acquire(user_id: int, slots: int) -> StreamLease | None:
    """A free (or lapsed) slot of the user, or None when all `slots` are held by live streams.

    One read first: a client refused a stream tries again every few seconds, and trying each slot in turn cost a
    refusal six transactions and three failed inserts."""
    holder = secrets.token_hex(16)
    with get_engine().connect() as connection:
        held = dict(connection.execute(select(StreamSlot.slot, StreamSlot.expires_at).where(
            StreamSlot.user_id == user_id, StreamSlot.slot < slots)).all())
    now = utcnow()
    for slot in range(slots):
        if slot in held and held[slot] >= now:
            continue  # held by a live stream
        if _take(user_id, slot, holder, now, lapsed=slot in held):
            return StreamLease(user_id, slot, holder)
    return None


def _take(user_id: int, slot: int, holder: str, now: datetime, *, lapsed: bool) -> bool:
    """Take over the lapsed slot, or insert the free one; False when another stream took it first."""
    values = {"holder": holder, "expires_at": now + timedelta(seconds=LEASE_SECONDS)}
    try:
        with get_engine().begin() as connection:
            if lapsed:
                return connection.execute(update(StreamSlot).where(
                    StreamSlot.user_id == user_id, StreamSlot.slot == slot, StreamSlot.expires_at < now)
                    .values(**values)).rowcount == 1
            connection.execute(StreamSlot.__table__.insert().values(user_id=user_id, slot=slot, **values))
            return True
    except IntegrityError:
        return False


def renew(lease: StreamLease) -> bool:
    """Extend the lease; False when the slot was lost (lapsed and taken by another stream)."""
    with get_engine().begin() as connection:
        return connection.execute(update(StreamSlot).where(
            StreamSlot.user_id == lease.user_id, StreamSlot.slot == lease.slot, StreamSlot.holder == lease.holder)
            .values(expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS))).rowcount == 1


def release(lease: StreamLease) -> None:
    with get_engine().begin() as connection:
        connection.execute(delete(StreamSlot).where(StreamSlot.user_id == lease.user_id,
                                                    StreamSlot.slot == lease.slot,
                                                    StreamSlot.holder == lease.holder))
