"""Infrastructure faults are never grades: a run that meets one waits and is retried, with doubling back-off, for
up to `infrastructure_retry_seconds`; meanwhile it shows as delayed with no score. Only the student's own
behaviour (timeout, memory, crash, wrong answers) produces a final grade.

A run past the retry period ends as an error without a score: it never counts in exports or badges, and an
instructor can regrade it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from grader.settings import get_settings
from grader.store.event_signal import note_new_events
from grader.store.models import GradingRun, RunEvent, utcnow

DELAYED_MESSAGE = "grading delayed: the grading machines are having trouble"
GAVE_UP_MESSAGE = ("We could not grade this file because the grading machines had trouble for too long. Nothing is "
                   "wrong with your submission and this does not count; an instructor has been told and can "
                   "regrade it.")


def is_infrastructure_fault(error: BaseException) -> bool:
    """Engine, connection, timeout and OS errors on the trusted side (never the student's doing)."""
    from sandbox.runner import InfrastructureError

    if isinstance(error, (InfrastructureError, OSError, TimeoutError, ConnectionError)):
        return True  # OSError covers requests' and urllib3's connection errors (the Docker SDK's transport)
    names = {f"{cls.__module__}.{cls.__name__}" for cls in type(error).__mro__}
    return bool(names & {
        "sqlalchemy.exc.OperationalError", "sqlalchemy.exc.InterfaceError", "sqlalchemy.exc.DisconnectionError",
        "docker.errors.DockerException", "redis.exceptions.ConnectionError", "redis.exceptions.TimeoutError",
        "kombu.exceptions.OperationalError", "psycopg.OperationalError",
    })


def backoff_seconds(faults: int) -> float:
    """Wait before the next attempt after the `faults`-th fault in a row: 10 s, 20 s, 40 s, ... up to 10 min."""
    settings = get_settings()
    return min(settings.infrastructure_backoff_max_seconds,
               settings.infrastructure_backoff_seconds * 2 ** max(0, faults - 1))


def delay(db: Session, run: GradingRun, reason: str, now: datetime | None = None) -> datetime | None:
    """Record a fault on a run its caller owns and put it back in its queue to wait: returns when it may run
    again (the sweep publishes it then), or None when the retry period is over (the caller ends it unscored)."""
    now = now or utcnow()
    run.infra_faults = (run.infra_faults or 0) + 1
    run.delayed_since = run.delayed_since or now
    if (now - run.delayed_since).total_seconds() > get_settings().infrastructure_retry_seconds:
        return None
    retry_at = now + timedelta(seconds=backoff_seconds(run.infra_faults))
    run.status, run.message, run.deadline, run.enqueued_at = "queued", DELAYED_MESSAGE, retry_at, now
    db.add(RunEvent(run_id=run.id, type="status", data={"status": "delayed", "stage": run.stage,
                                                        "reason": reason[:300], "retry_at": retry_at.isoformat()}))
    note_new_events(db, run.submission_id)
    return retry_at


def waiting(run: GradingRun, now: datetime) -> bool:
    """True while a delayed run waits out its back-off (its message is deliberately not in the broker)."""
    return run.delayed_since is not None and run.deadline is not None and run.deadline > now


def recovered(run: GradingRun) -> None:
    """A stage finished normally: the run is no longer delayed."""
    run.delayed_since = None
