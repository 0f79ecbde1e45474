"""Where a queued run stands: its place in its queue and when it should start."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.settings import get_settings
from grader.store.models import FINISHED_STATUSES, GradingRun, utcnow


def queue_position(db: Session, run: GradingRun) -> int | None:
    """1 for the next run to start in its queue; None once it has started."""
    if run.status != "queued":
        return None
    ahead = db.scalar(select(func.count(GradingRun.id)).where(
        GradingRun.status == "queued", GradingRun.queue == run.queue,
        (GradingRun.enqueued_at < run.enqueued_at)
        | ((GradingRun.enqueued_at == run.enqueued_at) & (GradingRun.id < run.id)))) or 0
    return ahead + 1


def average_stage_seconds(db: Session, stage: str, default: float) -> float:
    """How long `stage` took, on average, in those of the last 50 finished runs that ran it. Every upload and status
    read asks, so the database averages rather than the API loading 50 rows for one number."""
    recent = (select(GradingRun.stage_seconds[stage].as_float().label("seconds"))
              .where(GradingRun.status.in_(FINISHED_STATUSES)).order_by(GradingRun.id.desc()).limit(50).subquery())
    average = db.scalar(select(func.avg(recent.c.seconds)))
    return float(average) if average is not None else default


def estimated_start(db: Session, run: GradingRun, position: int | None) -> datetime | None:
    """When the run should start, from its place in the queue and how long recent runs of its stage took."""
    if position is None:
        return None
    default = 10.0 if run.stage == "correctness" else 20 * 60.0
    per_run = average_stage_seconds(db, run.stage, default) / max(1, get_settings().worker_concurrency)
    return utcnow() + timedelta(seconds=per_run * (position - 0.5))
