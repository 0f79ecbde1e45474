"""Daily rations: submissions per day and CPU-minutes of training per student, counted from midnight UTC.

A run reserves its training budget from the moment it waits for training, so parallel uploads cannot all pass;
runs a member of staff started (regrades, previews) are exempt."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.queues import TRAINING_QUEUE
from grader.settings import get_settings
from grader.store.models import Assignment, GradingRun, Submission, User


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def submissions_today(db: Session, assignment: Assignment, user: User, now: datetime) -> int:
    return db.scalar(select(func.count(Submission.id)).where(
        Submission.assignment_id == assignment.id, Submission.user_id == user.id,
        Submission.created_at >= day_start(now))) or 0


def started_by_staff(run: GradingRun) -> bool:
    """A regrade or preview someone other than the student started: it never spends the student's ration."""
    return run.requested_by is not None and run.requested_by != run.submission.user_id


def training_minutes_today(db: Session, user: User, now: datetime, *, excluding: int | None = None) -> float:
    """CPU-minutes of training the student's own runs used since midnight UTC, plus what their runs waiting for or
    in training reserve (the whole budget each, until they finish): parallel uploads cannot all pass the ration."""
    rows = db.scalars(select(GradingRun).join(Submission).where(
        Submission.user_id == user.id, GradingRun.id != (excluding or 0),
        (GradingRun.started_at >= day_start(now)) | GradingRun.status.in_(("queued", "running"))))
    settings = get_settings()
    seconds = 0.0
    for run in rows:
        if started_by_staff(run):
            continue
        if run.status in ("queued", "running") and run.queue == TRAINING_QUEUE:
            seconds += settings.training_budget_seconds
        else:
            seconds += float(run.stage_seconds.get("cifar10", 0.0))
    return seconds * settings.training_cpus / 60.0


def training_ration_minutes(assignment: Assignment) -> float:
    limits = assignment.limits or {}
    return float(limits.get("training_cpu_minutes_per_day", get_settings().training_cpu_minutes_per_day))


def training_ration_blocker(db: Session, run: GradingRun, now: datetime) -> str:
    """Why the run's student may not train today (empty when the ration allows it)."""
    assignment = run.submission.assignment
    if started_by_staff(run):
        return ""
    if training_minutes_today(db, run.submission.user, now, excluding=run.id) < training_ration_minutes(assignment):
        return ""
    resets = day_start(now) + timedelta(days=1)
    return (f"You have used today's {training_ration_minutes(assignment):g} CPU-minutes of training. Your "
            f"correctness score is final; resubmit after {resets:%Y-%m-%d %H:%M} UTC to train again.")
