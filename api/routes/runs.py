"""Grading runs: the instructor's list, one run, and verification of a run's server signature."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.access import run_for
from api.deps import CurrentInstructor, CurrentUser, SessionDep
from api.presenters import run_public
from api.schemas import RunPublic, VerifyPublic
from grader.store.models import Assignment, GradingRun, Submission
from grader.store.signing import signed_fields, verify_run

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


@router.get("")
def list_runs(db: SessionDep, instructor: CurrentInstructor, assignment: str | None = None,
              status: str | None = None, batch_id: str | None = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[RunPublic]:
    """All runs, newest first, optionally of one assignment, status or regrade batch."""
    query = select(GradingRun)
    if assignment:
        query = query.join(Submission).join(Assignment).where(Assignment.slug == assignment)
    if status:
        query = query.where(GradingRun.status == status)
    if batch_id:
        query = query.where(GradingRun.batch_id == batch_id)
    return [run_public(db, run) for run in db.scalars(query.order_by(GradingRun.id.desc()).limit(limit))]


@router.get("/{run_id}")
def read_run(run_id: int, db: SessionDep, user: CurrentUser) -> RunPublic:
    return run_public(db, run_for(db, run_id, user))


@router.get("/{run_id}/verify")
def verify(run_id: int, db: SessionDep, user: CurrentUser) -> VerifyPublic:
    """Check the server's HMAC over submission sha256, spec and grader versions, image digest and score."""
    run = run_for(db, run_id, user)
    return VerifyPublic(run_id=run.id, valid=verify_run(run), signature=run.signature, signed_fields=signed_fields(run))
