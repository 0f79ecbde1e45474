"""Refusals of a use case, each with a message written for the person who asked. The API maps each class to one
HTTP status (api/errors.py); the dashboard shows the message."""

from __future__ import annotations

from datetime import datetime


class ServiceError(Exception):
    """A request the service refuses; `str(error)` is the message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """Missing, or not the caller's to see (the two are indistinguishable on purpose)."""


class Forbidden(ServiceError):
    """The caller may see the thing but not do this to it."""


class Conflict(ServiceError):
    """The thing exists already, or is not in a state that allows this."""


class Invalid(ServiceError):
    """The input itself is wrong (an unparsable file, a broken spec, a malformed roster)."""


class TooLarge(ServiceError):
    """The input is larger than allowed."""


class LimitReached(ServiceError):
    """A daily limit is used up; it resets at `resets_at`."""

    def __init__(self, message: str, resets_at: datetime, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.resets_at = resets_at
        self.retry_after_seconds = retry_after_seconds
