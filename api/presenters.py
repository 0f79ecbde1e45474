"""Store rows -> public schemas, including what a student may not see yet (hidden checks before the due date)."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy.orm import Session

from api.schemas import AssignmentPublic, RunPublic, SubmissionPublic, SubmissionSummary
from grader.store import queue_estimates
from grader.store import runs as run_store
from grader.store.models import Assignment, GradingRun, Submission, User, as_utc, utcnow

WITHHELD = "Details of this check are shown after the due date."


def assignment_public(assignment: Assignment) -> AssignmentPublic:
    return AssignmentPublic(
        id=assignment.id, slug=assignment.slug, title=assignment.title, course=assignment.course.slug,
        due_at=assignment.due_at, late_policy=assignment.late_policy,
        daily_submission_limit=assignment.daily_submission_limit, limits=assignment.limits,
        stage_weights=assignment.stage_weights, stages=assignment.stages, max_score=assignment.max_score,
        pass_mark=assignment.pass_mark, spec_version=assignment.spec_version, created_at=assignment.created_at)


def run_public(db: Session, run: GradingRun) -> RunPublic:
    return RunPublic(
        id=run.id, submission_id=run.submission_id, status=run.status, stage=run.stage, queue=run.queue,
        kind=run.kind, applied=run.applied, batch_id=run.batch_id, score=run.score, max_score=run.max_score,
        grader_version=run.grader_version, spec_version=run.spec_version, image_digest=run.image_digest,
        backend=run.backend, attempts=run.attempts, created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at, stage_seconds=run.stage_seconds, signed=bool(run.signature),
        reused_from_run_id=run.reused_from_run_id, message=run.message,
        queue_position=queue_estimates.queue_position(db, run))


def visible_result(result: dict[str, Any] | None, assignment: Assignment, viewer: User) -> dict[str, Any] | None:
    """The result as `viewer` may see it: before the due date a student gets no details of hidden checks."""
    if result is None or viewer.is_instructor:
        return result
    if assignment.due_at is not None and utcnow() >= as_utc(assignment.due_at):
        return result
    redacted = copy.deepcopy(result)
    for test in redacted.get("tests", []):
        if test.get("visibility") in ("hidden", "after_due_date"):
            test["output"] = WITHHELD
    return redacted


def submission_status(run: GradingRun | None) -> str:
    return run.status if run is not None else "queued"


def submission_public(db: Session, submission: Submission, viewer: User) -> SubmissionPublic:
    assignment = submission.assignment
    run = run_store.current_run(submission)
    pending = next((r for r in reversed(submission.runs) if r.applied and not r.finished), None)
    status_run = pending or run
    position = queue_estimates.queue_position(db, status_run) if status_run is not None else None
    finished = run is not None and run.finished
    score = run.score if finished else None
    passed = (run.status == "graded" and score is not None and score >= assignment.pass_mark) if finished else None
    runs = [r for r in submission.runs if viewer.is_instructor or r.applied]
    partial = status_run.result if status_run is not None else None
    return SubmissionPublic(
        id=submission.id, assignment=assignment.slug, user_id=submission.user_id, user_email=submission.user.email,
        filename=submission.filename, size_bytes=submission.size_bytes, sha256=submission.sha256,
        repo=submission.repo, commit=submission.commit, status=submission_status(status_run), score=score,
        max_score=(run.max_score if finished else None) or assignment.max_score, passed=passed,
        result=visible_result(partial if pending is not None and partial else run.result if finished else None,
                              assignment, viewer),
        queue_position=position, estimated_start=queue_estimates.estimated_start(db, status_run, position)
        if status_run is not None else None,
        late=submission.late, late_days=submission.late_days, created_at=submission.created_at,
        runs=[run_public(db, r) for r in runs])


def submission_summary(submission: Submission) -> SubmissionSummary:
    run = run_store.current_run(submission)
    finished = run is not None and run.finished
    pending = next((r for r in reversed(submission.runs) if r.applied and not r.finished), None)
    return SubmissionSummary(
        id=submission.id, assignment=submission.assignment.slug, user_id=submission.user_id,
        user_email=submission.user.email, status=submission_status(pending or run),
        score=run.score if finished else None, max_score=run.max_score if finished else None,
        late=submission.late, created_at=submission.created_at)
