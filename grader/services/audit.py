"""The audit log (score changes, deadlines, late days), as far as the caller may read it (entries about their courses)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from grader.services import access
from grader.services.policy import Action
from grader.store import audit
from grader.store.models import Assignment, AuditLog, Submission, User


@dataclass(frozen=True)
class AuditView:
    chain_valid: bool  # the whole chain, not only the entries shown
    first_broken_id: int | None
    entries: list[AuditLog]


def audit_for(db: Session, user: User, limit: int = 500) -> AuditView:
    """Newest first: every entry for an admin; for staff, the entries about their courses' submissions,
    assignments (extensions, due dates, late policies) and the courses themselves (late-day tokens)."""
    access.require_staff_somewhere(db, user)
    valid, broken = audit.verify_chain(db)
    query = select(AuditLog)
    course_ids = access.course_ids_for(db, user, Action.READ_AUDIT)
    if course_ids is not None:
        query = query.where(about_courses(course_ids))
    entries = list(db.scalars(query.order_by(AuditLog.id.desc()).limit(limit)))
    return AuditView(chain_valid=valid, first_broken_id=broken, entries=entries)


def about_courses(course_ids):
    """Audit entries whose entity (a submission, an assignment or a course) belongs to one of `course_ids`."""
    assignments = select(Assignment.id).where(Assignment.course_id.in_(course_ids))
    submissions = select(Submission.id).where(Submission.assignment_id.in_(assignments))
    return or_(and_(AuditLog.entity == "submission", AuditLog.entity_id.in_(submissions)),
               and_(AuditLog.entity == "assignment", AuditLog.entity_id.in_(assignments)),
               and_(AuditLog.entity == "course", AuditLog.entity_id.in_(list(course_ids))))


DEADLINE_ACTIONS = ("due_date", "late_policy", "extension", "late_days", "lateness")


@dataclass(frozen=True)
class DeadlineChange:
    entry: AuditLog
    actor: str  # the email of who made the change; "the system" when no one did
    student: str  # the email of the student it concerns; "" when it concerns the whole assignment


def deadline_history(db: Session, assignment: Assignment, limit: int = 100) -> list[DeadlineChange]:
    """Newest first: the deadline changes staff made to `assignment` (its due date, late policy, extensions), the
    late-day tokens given in its course, and the lateness they recomputed for its submissions."""
    own_submissions = select(Submission.id).where(Submission.assignment_id == assignment.id)
    query = (select(AuditLog).where(AuditLog.action.in_(DEADLINE_ACTIONS))
             .where(or_(and_(AuditLog.entity == "course", AuditLog.entity_id == assignment.course_id),
                        and_(AuditLog.entity == "assignment", AuditLog.entity_id == assignment.id),
                        and_(AuditLog.entity == "submission", AuditLog.entity_id.in_(own_submissions))))
             .order_by(AuditLog.id.desc()).limit(limit))
    entries = list(db.scalars(query))
    owners = dict(db.execute(select(Submission.id, Submission.user_id).where(Submission.id.in_(
        [entry.entity_id for entry in entries if entry.entity == "submission"]))).all())

    def student_of(entry: AuditLog) -> int | None:
        return owners.get(entry.entity_id) if entry.entity == "submission" else entry.data.get("user_id")

    people = {entry.actor_id for entry in entries} | {student_of(entry) for entry in entries}
    emails = dict(db.execute(select(User.id, User.email).where(User.id.in_(people - {None}))).all())
    return [DeadlineChange(entry, emails.get(entry.actor_id, "the system"), emails.get(student_of(entry), ""))
            for entry in entries]
