"""Password-login throttle shared by every API process: moving windows of `limits`, per account and per client.

An attempt takes an entry in both windows before the password is checked (atomic in the store, so a burst of
parallel requests cannot overshoot); a correct password gives the client's entry back and clears the account's
window, so only failures count. The windows live in Redis when BROKER_URL is Redis, else in the database.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from grader.settings import Settings
from grader.store.throttle_storage import DatabaseMovingWindowStorage

log = logging.getLogger(__name__)
REDIS_TIMEOUT_SECONDS = 2.0


class RedisThrottleStorage(RedisStorage):
    """limits' Redis storage (capped lists with a TTL), plus giving back the newest entry of a window."""

    STORAGE_SCHEME = None  # not registered: `redis://` URIs keep meaning limits' own class

    def release_entry(self, key: str) -> None:
        self.get_connection().lpop(self.prefixed_key(key))


@dataclass(frozen=True)
class Attempt:
    """A login attempt that took its entries; `retry_after_seconds` > 0 means it was refused."""

    account_key: str
    client_key: str
    retry_after_seconds: int = 0

    @property
    def refused(self) -> bool:
        return self.retry_after_seconds > 0


def _opaque(kind: str, value: str) -> str:
    # Store no email or address in clear, and keep keys short whatever the input.
    return kind + ":" + hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, storage, *, per_account: int, per_client: int, window_seconds: int) -> None:
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.account_limit = RateLimitItemPerSecond(per_account, window_seconds, namespace="login-account")
        self.client_limit = RateLimitItemPerSecond(per_client, window_seconds, namespace="login-client")

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginThrottle:
        url = settings.broker_url
        if url.startswith(("redis://", "rediss://")):
            storage = RedisThrottleStorage(url, wrap_exceptions=True, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                           socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
        else:
            storage = DatabaseMovingWindowStorage(max_rows=settings.throttle_max_rows)
        return cls(storage, per_account=settings.login_failures_per_account,
                   per_client=settings.login_failures_per_client,
                   window_seconds=settings.login_failure_window_seconds)

    def attempt(self, email: str, client: str) -> Attempt:
        """Take an entry for `email` and one for `client`; refused (with the wait) when either window is full.

        When the store is unreachable the attempt is allowed and logged: a Redis outage must not lock every
        instructor out, and argon2 still bounds the guessing rate."""
        attempt = Attempt(_opaque("account", email.strip().lower()), _opaque("client", client))
        try:
            if not self.limiter.hit(self.account_limit, attempt.account_key):
                return self._refused(attempt, self.account_limit, attempt.account_key)
            if not self.limiter.hit(self.client_limit, attempt.client_key):
                self.storage.release_entry(self.account_limit.key_for(attempt.account_key))
                return self._refused(attempt, self.client_limit, attempt.client_key)
        except (StorageError, *self._store_errors()) as error:
            log.error("login throttle store unavailable, allowing the attempt: %s", error)
        return attempt

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: it was no failure, and the account starts again from zero."""
        try:
            self.storage.release_entry(self.client_limit.key_for(attempt.client_key))
            self.limiter.clear(self.account_limit, attempt.account_key)
        except (StorageError, *self._store_errors()) as error:
            log.error("login throttle store unavailable: %s", error)

    def _refused(self, attempt: Attempt, limit, key: str) -> Attempt:
        reset_at = self.limiter.get_window_stats(limit, key).reset_time
        return Attempt(attempt.account_key, attempt.client_key, max(1, math.ceil(reset_at - time.time())))

    def _store_errors(self) -> tuple[type[Exception], ...]:
        errors = self.storage.base_exceptions
        return errors if isinstance(errors, tuple) else (errors,)
