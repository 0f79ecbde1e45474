"""Per-student deadlines: extensions (a new due date in one assignment) and late-day tokens (per course), and the
recomputation of every affected submission's lateness from its upload time, each change in the audit log.

The rule (the one place it is decided):
1. A student's deadline in an assignment is their extension's due date when they have one, else the assignment's.
2. A submission's raw late days are the started days between that deadline and its upload time.
3. Late-day tokens are spent in the course's due-date order (then assignment id): in each assignment they cover the
   raw late days of the student's latest submission there, as far as tokens remain; every submission of that
   assignment has its late days reduced by the tokens spent there.
4. The penalty follows from the stored late days and the assignment's late policy (grader/services/scores.py), so
   a policy change applies at once; it is audited here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.services.errors import Invalid
from grader.store import audit, lateness
from grader.store.models import (Assignment, Course, Enrollment, Extension, LateDayGrant, Submission, User, as_utc)

MAX_LATE_DAY_TOKENS = 365


@dataclass(frozen=True)
class Deadline:
    """The due date that applies to one student, and whether it comes from an extension."""

    due_at: datetime | None
    extended: bool
    late_day_tokens: int  # granted in the course
    tokens_left: int


def extension_of(db: Session, assignment: Assignment, user: User) -> Extension | None:
    return db.scalar(select(Extension).where(Extension.assignment_id == assignment.id, Extension.user_id == user.id))


def tokens_of(db: Session, course: Course, user: User) -> int:
    grant = db.scalar(select(LateDayGrant).where(LateDayGrant.course_id == course.id, LateDayGrant.user_id == user.id))
    return grant.tokens if grant is not None else 0


def due_date_for(db: Session, assignment: Assignment, user: User) -> datetime | None:
    """Rule 1."""
    extension = extension_of(db, assignment, user)
    return extension.due_at if extension is not None else assignment.due_at


def raw_late_days(due_at: datetime | None, uploaded_at: datetime) -> int:
    """Rule 2: started days after `due_at` (0 on time or without a due date)."""
    if due_at is None or as_utc(uploaded_at) <= as_utc(due_at):
        return 0
    return lateness.late_days_after(as_utc(due_at), as_utc(uploaded_at))


def _course_order(course: Course) -> list[Assignment]:
    far = datetime.max.replace(tzinfo=None)
    return sorted(course.assignments, key=lambda a: (as_utc(a.due_at).replace(tzinfo=None) if a.due_at else far, a.id))


def _token_plan(db: Session, course: Course, user: User) -> tuple[dict[int, int], int]:
    """Rule 3: tokens spent per assignment id, and the tokens left."""
    remaining = tokens_of(db, course, user)
    spent: dict[int, int] = {}
    for assignment in _course_order(course):
        latest = db.scalar(select(Submission).where(Submission.assignment_id == assignment.id,
                                                    Submission.user_id == user.id).order_by(Submission.id.desc()))
        if latest is None:
            continue
        need = raw_late_days(due_date_for(db, assignment, user), latest.created_at)
        spent[assignment.id] = min(remaining, need)
        remaining -= spent[assignment.id]
    return spent, remaining


def deadline_for(db: Session, assignment: Assignment, user: User) -> Deadline:
    extension = extension_of(db, assignment, user)
    _, left = _token_plan(db, assignment.course, user)
    return Deadline(due_at=extension.due_at if extension else assignment.due_at, extended=extension is not None,
                    late_day_tokens=tokens_of(db, assignment.course, user), tokens_left=left)


def recompute_student(db: Session, course: Course, user: User, *, actor_id: int | None, reason: str) -> list[Submission]:
    """Recompute the late days of every submission of `user` in `course`; audit and return the changed ones."""
    spent, _ = _token_plan(db, course, user)
    changed = []
    for assignment in course.assignments:
        due_at = due_date_for(db, assignment, user)
        for submission in db.scalars(select(Submission).where(Submission.assignment_id == assignment.id,
                                                              Submission.user_id == user.id)):
            days = max(0, raw_late_days(due_at, submission.created_at) - spent.get(assignment.id, 0))
            if days == submission.late_days and submission.late == (days > 0):
                continue
            audit.append(db, actor_id=actor_id, action="lateness", entity="submission", entity_id=submission.id,
                         data={"old_late_days": submission.late_days, "new_late_days": days, "reason": reason,
                               "due_at": due_at.isoformat() if due_at else None})
            submission.late_days, submission.late = days, days > 0
            changed.append(submission)
    db.flush()
    return changed


def recompute_assignment(db: Session, assignment: Assignment, *, actor_id: int | None, reason: str) -> list[Submission]:
    """After the due date changed: every student who submitted to the assignment (tokens span the course)."""
    user_ids = set(db.scalars(select(Submission.user_id).where(Submission.assignment_id == assignment.id)))
    changed: list[Submission] = []
    for user_id in sorted(user_ids):
        changed += recompute_student(db, assignment.course, db.get(User, user_id), actor_id=actor_id, reason=reason)
    return changed


def _enrolled_student(db: Session, course: Course, email: str) -> User:
    user = db.scalar(select(User).join(Enrollment, Enrollment.user_id == User.id)
                     .where(Enrollment.course_id == course.id, User.email == email.strip().lower()))
    if user is None:
        raise Invalid(f"No one with the email {email.strip()!r} is enrolled in {course.slug}.")
    return user


def grant_extension(db: Session, assignment: Assignment, *, email: str, due_at: datetime | None, reason: str,
                    actor: User) -> list[Submission]:
    """Give one student a new due date (None: take the extension back); their lateness is recomputed at once."""
    student = _enrolled_student(db, assignment.course, email)
    extension = extension_of(db, assignment, student)
    old = extension.due_at.isoformat() if extension else None
    if due_at is None:
        if extension is not None:
            db.delete(extension)
    elif extension is None:
        db.add(Extension(assignment_id=assignment.id, user_id=student.id, due_at=due_at, reason=reason[:500],
                         granted_by=actor.id))
    else:
        extension.due_at, extension.reason, extension.granted_by = due_at, reason[:500], actor.id
    db.flush()
    audit.append(db, actor_id=actor.id, action="extension", entity="assignment", entity_id=assignment.id,
                 data={"user_id": student.id, "old_due_at": old, "new_due_at": due_at.isoformat() if due_at else None,
                       "reason": reason[:500]})
    return recompute_student(db, assignment.course, student, actor_id=actor.id,
                             reason=f"extension for {assignment.slug}")


def grant_late_days(db: Session, course: Course, *, email: str, tokens: int, actor: User) -> list[Submission]:
    """Set a student's late-day tokens in the course; their lateness is recomputed at once."""
    if not 0 <= tokens <= MAX_LATE_DAY_TOKENS:
        raise Invalid(f"Late-day tokens must be between 0 and {MAX_LATE_DAY_TOKENS}.")
    student = _enrolled_student(db, course, email)
    grant = db.scalar(select(LateDayGrant).where(LateDayGrant.course_id == course.id,
                                                 LateDayGrant.user_id == student.id))
    old = grant.tokens if grant else 0
    if grant is None:
        db.add(LateDayGrant(course_id=course.id, user_id=student.id, tokens=tokens, granted_by=actor.id))
    else:
        grant.tokens, grant.granted_by = tokens, actor.id
    db.flush()
    audit.append(db, actor_id=actor.id, action="late_days", entity="course", entity_id=course.id,
                 data={"user_id": student.id, "old_tokens": old, "new_tokens": tokens})
    return recompute_student(db, course, student, actor_id=actor.id, reason="late-day tokens changed")


def after_assignment_change(db: Session, assignment: Assignment, changes: dict[str, Any], old: dict[str, Any],
                            actor_id: int | None) -> None:
    """Called when an assignment's due date or late policy changed: recompute and audit (rule 4)."""
    if "late_policy" in changes and changes["late_policy"] is not None and old.get("late_policy") != assignment.late_policy:
        audit.append(db, actor_id=actor_id, action="late_policy", entity="assignment", entity_id=assignment.id,
                     data={"old": old.get("late_policy"), "new": assignment.late_policy})
    if "due_at" in changes and old.get("due_at") != assignment.due_at:
        audit.append(db, actor_id=actor_id, action="due_date", entity="assignment", entity_id=assignment.id,
                     data={"old": old["due_at"].isoformat() if old.get("due_at") else None,
                           "new": assignment.due_at.isoformat() if assignment.due_at else None})
        recompute_assignment(db, assignment, actor_id=actor_id, reason=f"due date of {assignment.slug} changed")


def extensions_of(db: Session, assignment: Assignment) -> list[Extension]:
    return list(db.scalars(select(Extension).where(Extension.assignment_id == assignment.id).order_by(Extension.id)))
