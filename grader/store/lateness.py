"""Lateness: days late by upload time, and the share of the score the assignment's late policy keeps."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from grader.store.models import Assignment, as_utc


def late_days(assignment: Assignment, uploaded_at: datetime) -> int:
    """Started days after the due date at upload time (0 when on time); grading time never counts."""
    if assignment.due_at is None or uploaded_at <= as_utc(assignment.due_at):
        return 0
    return late_days_after(as_utc(assignment.due_at), uploaded_at)


def late_days_after(due_at: datetime, uploaded_at: datetime) -> int:
    """Started days from `due_at` to `uploaded_at` (at least 1: the caller knows the upload is late)."""
    return max(1, math.ceil((uploaded_at - due_at) / timedelta(days=1)))


def late_factor(assignment: Assignment, days_late: int) -> float:
    """Fraction of the score kept under the assignment's late policy."""
    if days_late <= 0:
        return 1.0
    policy = assignment.late_policy or {}
    if days_late > int(policy.get("max_late_days", 0)):
        return 0.0
    return max(0.0, 1.0 - float(policy.get("penalty_per_day", 0.0)) * days_late)
