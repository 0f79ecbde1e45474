"""Daily rations: submissions per day and CPU-minutes of training per student, counted from midnight UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from grader.settings import get_settings
from grader.store.models import Assignment, GradingRun, Submission, User


def day_start(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def submissions_today(db: Session, assignment: Assignment, user: User, now: datetime) -> int:
    return db.scalar(select(func.count(Submission.id)).where(
        Submission.assignment_id == assignment.id, Submission.user_id == user.id,
        Submission.created_at >= day_start(now))) or 0


def training_minutes_today(db: Session, user: User, now: datetime) -> float:
    """CPU-minutes of training the student's runs used since midnight UTC."""
    rows = db.scalars(select(GradingRun).join(Submission).where(
        Submission.user_id == user.id, GradingRun.started_at >= day_start(now)))
    cpus = get_settings().training_cpus
    return sum(float(run.stage_seconds.get("cifar10", 0.0)) for run in rows) * cpus / 60.0


def training_ration_minutes(assignment: Assignment) -> float:
    limits = assignment.limits or {}
    return float(limits.get("training_cpu_minutes_per_day", get_settings().training_cpu_minutes_per_day))


def training_ration_blocker(db: Session, run: GradingRun, now: datetime) -> str:
    """Why the run's student may not train today (empty when the ration allows it)."""
    assignment = run.submission.assignment
    if training_minutes_today(db, run.submission.user, now) < training_ration_minutes(assignment):
        return ""
    resets = day_start(now) + timedelta(days=1)
    return (f"You have used today's {training_ration_minutes(assignment):g} CPU-minutes of training. Your "
            f"correctness score is final; resubmit after {resets:%Y-%m-%d %H:%M} UTC to train again.")
