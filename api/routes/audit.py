"""The audit log of score changes, with a check of its hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import CurrentInstructor, SessionDep
from api.schemas import AuditEntryPublic, AuditPublic
from grader.store import audit
from grader.store.models import AuditLog

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
def read_audit_log(db: SessionDep, instructor: CurrentInstructor,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> AuditPublic:
    valid, broken = audit.verify_chain(db)
    entries = db.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit))
    return AuditPublic(chain_valid=valid, first_broken_id=broken,
                       entries=[AuditEntryPublic.model_validate(e) for e in entries])
