"""A `limits` storage in the service's database, for deployments without Redis (moving windows only).

Each entry is a row (key, time). An acquisition counts the key's rows in the window and adds one only below the
limit, inside one transaction that is serialised per key (a Postgres advisory lock; SQLite has one writer), so
parallel requests cannot overshoot. Rows older than their window are pruned, and the table never holds more than
`max_rows`: a key holds at most `limit` rows, and the oldest rows go first when the cap is reached.
"""

from __future__ import annotations

import threading
import time

from limits.storage import MovingWindowSupport, Storage
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from grader.store.db import get_engine
from grader.store.models import ThrottleEntry

PRUNE_INTERVAL_SECONDS = 60.0  # how often one process deletes expired rows of every key


class DatabaseMovingWindowStorage(Storage, MovingWindowSupport):
    STORAGE_SCHEME = None  # made directly, never from a URI

    def __init__(self, max_rows: int = 100_000) -> None:
        super().__init__(wrap_exceptions=True)
        self.max_rows = max_rows
        self._last_prune = 0.0
        self._prune_lock = threading.Lock()

    @property
    def base_exceptions(self) -> type[Exception]:
        return SQLAlchemyError

    def _lock_key(self, connection: Connection, key: str) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        now = time.time()
        with get_engine().begin() as connection:
            self._lock_key(connection, key)
            # A write first, so that SQLite takes its write lock before counting.
            connection.execute(delete(ThrottleEntry).where(ThrottleEntry.key == key, ThrottleEntry.at < now - expiry))
            count = connection.scalar(select(func.count()).where(ThrottleEntry.key == key)) or 0
            if amount > limit or count + amount > limit:
                return False
            connection.execute(ThrottleEntry.__table__.insert(),
                               [{"key": key, "at": now, "expires_at": now + expiry}] * amount)
        self._prune(now)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        with get_engine().connect() as connection:
            times = connection.scalars(select(ThrottleEntry.at).where(ThrottleEntry.key == key,
                                                                      ThrottleEntry.at >= now - expiry)
                                       .order_by(ThrottleEntry.at.desc()).limit(limit)).all()
        return (times[-1], len(times)) if times else (now, 0)

    def release_entry(self, key: str) -> None:
        """Give back the newest entry of `key` (an attempt that turned out not to be a failure)."""
        with get_engine().begin() as connection:
            self._lock_key(connection, key)
            newest = connection.scalar(select(ThrottleEntry.id).where(ThrottleEntry.key == key)
                                       .order_by(ThrottleEntry.at.desc(), ThrottleEntry.id.desc()).limit(1))
            if newest is not None:
                connection.execute(delete(ThrottleEntry).where(ThrottleEntry.id == newest))

    def _prune(self, now: float) -> None:
        with self._prune_lock:
            if now - self._last_prune < PRUNE_INTERVAL_SECONDS:
                return
            self._last_prune = now
        with get_engine().begin() as connection:
            connection.execute(delete(ThrottleEntry).where(ThrottleEntry.expires_at < now))
            rows = connection.scalar(select(func.count()).select_from(ThrottleEntry)) or 0
            if rows > self.max_rows:
                cutoff = connection.scalar(select(ThrottleEntry.at).order_by(ThrottleEntry.at.desc())
                                           .offset(self.max_rows).limit(1))
                connection.execute(delete(ThrottleEntry).where(ThrottleEntry.at <= cutoff))

    def clear(self, key: str) -> None:
        with get_engine().begin() as connection:
            connection.execute(delete(ThrottleEntry).where(ThrottleEntry.key == key))

    def reset(self) -> int | None:
        with get_engine().begin() as connection:
            return connection.execute(delete(ThrottleEntry)).rowcount

    def check(self) -> bool:
        try:
            with get_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except SQLAlchemyError:
            return False

    # Fixed-window counters are not used by the service (grader/throttle.py uses moving windows only).
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        raise NotImplementedError("the database throttle storage supports moving windows only")

    def get(self, key: str) -> int:
        raise NotImplementedError("the database throttle storage supports moving windows only")

    def get_expiry(self, key: str) -> float:
        raise NotImplementedError("the database throttle storage supports moving windows only")
