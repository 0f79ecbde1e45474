"""Where a queued run stands: its place in its queue and when it should start."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import JSON, bindparam, func, select
from sqlalchemy.orm import Session

from grader.settings import get_settings
from grader.store.models import FINISHED_STATUSES, GradingRun, utcnow


def _runs_ahead():
    """Queued runs of the run's queue enqueued before it (ties: the lower id first)."""
    enqueued_at = bindparam("enqueued_at")
    return select(func.count(GradingRun.id)).where(
        GradingRun.status == "queued", GradingRun.queue == bindparam("queue"),
        (GradingRun.enqueued_at < enqueued_at) | ((GradingRun.enqueued_at == enqueued_at)
                                                  & (GradingRun.id < bindparam("run_id"))))


def _recent_average():
    """How long the stage took on average in those of the last 50 finished runs that ran it (NULL: none did)."""
    # A JSON index type, so that SQLite (the embedded store) receives the path '$."stage"' and Postgres the key.
    stage = bindparam("stage", type_=JSON.JSONStrIndexType)
    recent = (select(GradingRun.stage_seconds[stage].as_float().label("seconds"))
              .where(GradingRun.status.in_(FINISHED_STATUSES)).order_by(GradingRun.id.desc()).limit(50).subquery())
    return select(func.avg(recent.c.seconds))


# Built once: every upload and status read asks, and building the statements cost the API more than running them.
_RUNS_AHEAD = _runs_ahead()
_AHEAD_AND_AVERAGE = select(_runs_ahead().scalar_subquery(), _recent_average().scalar_subquery())


def _ahead_parameters(run: GradingRun) -> dict:
    return {"queue": run.queue, "enqueued_at": run.enqueued_at, "run_id": run.id}


def queue_position(db: Session, run: GradingRun) -> int | None:
    """1 for the next run to start in its queue; None once it has started."""
    if run.status != "queued":
        return None
    return (db.scalar(_RUNS_AHEAD, _ahead_parameters(run)) or 0) + 1


def _default_seconds(stage: str) -> float:
    return 10.0 if stage == "correctness" else 20 * 60.0


def _start_at(run: GradingRun, position: int, average: float | None) -> datetime:
    seconds = float(average) if average is not None else _default_seconds(run.stage)
    per_run = seconds / max(1, get_settings().worker_concurrency)
    return utcnow() + timedelta(seconds=per_run * (position - 0.5))


def position_and_start(db: Session, run: GradingRun) -> tuple[int | None, datetime | None]:
    """queue_position and estimated_start together, in one query (an upload and a status read need both)."""
    if run.status != "queued":
        return None, None
    ahead, average = db.execute(_AHEAD_AND_AVERAGE, {**_ahead_parameters(run), "stage": run.stage}).one()
    position = (ahead or 0) + 1
    return position, _start_at(run, position, average)
