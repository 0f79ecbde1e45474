"""The audit log of score changes, as far as the caller may read it (entries about their courses)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
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
    """Newest first: every entry for an admin, entries about submissions of the caller's courses otherwise."""
    access.require_staff_somewhere(db, user)
    valid, broken = audit.verify_chain(db)
    query = select(AuditLog)
    course_ids = access.course_ids_for(db, user, Action.READ_AUDIT)
    if course_ids is not None:
        query = (query.join(Submission, (AuditLog.entity == "submission") & (AuditLog.entity_id == Submission.id))
                 .join(Assignment, Assignment.id == Submission.assignment_id)
                 .where(Assignment.course_id.in_(course_ids)))
    entries = list(db.scalars(query.order_by(AuditLog.id.desc()).limit(limit)))
    return AuditView(chain_valid=valid, first_broken_id=broken, entries=entries)
