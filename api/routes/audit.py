"""The audit log of score changes in the caller's courses, with a check of its hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep
from api.schemas import AuditEntryPublic, AuditPublic
from grader.services.audit import audit_for

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
def read_audit_log(db: SessionDep, user: CurrentUser,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> AuditPublic:
    view = audit_for(db, user, limit)
    return AuditPublic(chain_valid=view.chain_valid, first_broken_id=view.first_broken_id,
                       entries=[AuditEntryPublic.model_validate(e) for e in view.entries])
