"""Grading runs: the staff's list, one run, and verification of a run's server signature."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, RowId, SessionDep
from api.presenters import run_public_for
from api.schemas import RunPublic, VerifyPublic
from grader.services import access
from grader.services import runs as run_service
from grader.store.signing import signed_fields, verify_run

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


@router.get("")
def list_runs(db: SessionDep, user: CurrentUser, assignment: str | None = None, status: str | None = None,
              batch_id: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[RunPublic]:
    """Runs of the courses the caller staffs, newest first, optionally of one assignment, status or batch."""
    runs = run_service.list_runs(db, user, assignment=assignment, status=status, batch_id=batch_id, limit=limit)
    return [run_public_for(db, run, user) for run in runs]


@router.get("/{run_id}")
def read_run(run_id: RowId, db: SessionDep, user: CurrentUser) -> RunPublic:
    return run_public_for(db, access.run_for(db, run_id, user), user)


@router.get("/{run_id}/verify")
def verify(run_id: RowId, db: SessionDep, user: CurrentUser) -> VerifyPublic:
    """Check the server's HMAC over submission sha256, spec and grader versions, image digest and score."""
    run = access.run_for(db, run_id, user)
    return VerifyPublic(run_id=run.id, valid=verify_run(run), signature=run.signature, signed_fields=signed_fields(run))
