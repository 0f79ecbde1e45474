"""The periodic sweep: Postgres is the source of truth and the broker only a wake-up call, so runs whose message
was lost, or whose worker stopped renewing its lease, are found here and published again.

A lost broker (Redis restarted without persistence) loses every queued message at once. Waiting for each run's
deadline would take up to `run_requeue_queued_seconds`; instead the sweep compares, per queue, the runs queued in
the store with the messages the broker holds: when the broker holds fewer, the missing ones are published again
at once. A normal long queue holds a message per queued run, so nothing is republished then (no flooding).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.settings import get_settings
from grader.store import faults
from grader.store.models import GradingRun, utcnow
from grader.store.runs import requeue


def sweep(db: Session, now: datetime | None = None,
          broker_depths: Mapping[str, int] | None = None) -> list[tuple[int, str]]:
    """Runs to publish again: running ones whose worker stopped renewing its lease, queued ones past their
    deadline (never picked up, or done waiting out an infrastructure fault) and, when `broker_depths` (queue ->
    messages waiting in the broker) is given, queued ones the broker has lost.

    Returns (run id, queue) pairs; the caller publishes them after commit."""
    now = now or utcnow()
    settings = get_settings()
    stuck = db.scalars(select(GradingRun).where(GradingRun.status.in_(("queued", "running")),
                                                GradingRun.deadline < now).with_for_update(skip_locked=True)).all()
    republish = []
    for run in stuck:
        if run.status == "running":
            requeue(db, run, f"The worker grading this run stopped (attempt {run.attempts}); it was queued again.")
        else:
            run.deadline = now + timedelta(seconds=settings.run_requeue_queued_seconds)
        republish.append((run.id, run.queue))
    if broker_depths is not None:
        done = {run_id for run_id, _queue in republish}
        republish += [(run.id, run.queue) for run in lost_messages(db, now, broker_depths) if run.id not in done]
    return republish


def lost_messages(db: Session, now: datetime, broker_depths: Mapping[str, int]) -> list[GradingRun]:
    """Queued runs whose message the broker no longer holds, oldest first (their deadline is pushed back)."""
    grace = timedelta(seconds=get_settings().broker_grace_seconds)
    lost: list[GradingRun] = []
    for queue, depth in broker_depths.items():
        expected = [run for run in db.scalars(select(GradingRun).where(
            GradingRun.status == "queued", GradingRun.queue == queue,
            GradingRun.enqueued_at < now - grace).order_by(GradingRun.enqueued_at, GradingRun.id))
            if not faults.waiting(run, now)]
        missing = len(expected) - max(0, depth)
        for run in expected[:max(0, missing)]:
            run.deadline = now + timedelta(seconds=get_settings().run_requeue_queued_seconds)
            lost.append(run)
    return lost
