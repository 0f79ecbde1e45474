"""The periodic sweep: Postgres is the source of truth and the broker only a wake-up call, so runs whose message
was lost, or whose worker stopped renewing its lease, are found here and published again."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.settings import get_settings
from grader.store.models import GradingRun, utcnow
from grader.store.runs import requeue


def sweep(db: Session, now: datetime | None = None) -> list[tuple[int, str]]:
    """Runs to publish again: queued ones never picked up, running ones whose worker stopped renewing its lease.

    Returns (run id, queue) pairs; the caller publishes them after commit."""
    now = now or utcnow()
    stuck = db.scalars(select(GradingRun).where(GradingRun.status.in_(("queued", "running")),
                                                GradingRun.deadline < now).with_for_update(skip_locked=True)).all()
    republish = []
    for run in stuck:
        if run.status == "running":
            requeue(db, run, f"The worker grading this run stopped (attempt {run.attempts}); it was queued again.")
        else:
            run.deadline = now + timedelta(seconds=get_settings().run_requeue_queued_seconds)
        republish.append((run.id, run.queue))
    return republish
