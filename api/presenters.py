"""Store rows -> public schemas, including what a viewer may not see yet (hidden checks before the due date)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from api.schemas import (AssignmentPublic, EnrollmentPublic, RegradeChange, RegradePreview, RunPublic,
                         SubmissionPublic, SubmissionSummary)
from grader import hidden_checks
from grader.services import access
from grader.services import runs as run_service
from grader.services.policy import Action
from grader.services.scores import counted_score
from grader.store.models import Assignment, Enrollment, GradingRun, Submission, User

def assignment_public(assignment: Assignment) -> AssignmentPublic:
    return AssignmentPublic(
        id=assignment.id, slug=assignment.slug, title=assignment.title, course=assignment.course.slug,
        due_at=assignment.due_at, late_policy=assignment.late_policy,
        daily_submission_limit=assignment.daily_submission_limit, limits=assignment.limits,
        stage_weights=assignment.stage_weights, stages=assignment.stages, max_score=assignment.max_score,
        pass_mark=assignment.pass_mark, spec_version=assignment.spec_version, created_at=assignment.created_at,
        self_test=assignment.self_test)


def run_public(db: Session, run: GradingRun, sees_hidden: bool = True,
               known_positions: dict[int, int | None] | None = None) -> RunPublic:
    """`known_positions`: places in the queue already counted for this response (run id -> place)."""
    known_positions = known_positions or {}
    return RunPublic(
        id=run.id, submission_id=run.submission_id, status=run.status, stage=run.stage, queue=run.queue,
        kind=run.kind, applied=run.applied, batch_id=run.batch_id, score=run.score, max_score=run.max_score,
        grader_version=run.grader_version, spec_version=run.spec_version, image_digest=run.image_digest,
        backend=run.backend, attempts=run.attempts, created_at=run.created_at, started_at=run.started_at,
        finished_at=run.finished_at, stage_seconds=run.stage_seconds, signed=bool(run.signature),
        reused_from_run_id=run.reused_from_run_id, message=visible_message(run, sees_hidden),
        queue_position=known_positions[run.id] if run.id in known_positions else run_service.queue_position(db, run))


def run_public_for(db: Session, run: GradingRun, viewer: User) -> RunPublic:
    """A run as `viewer` may see it (its message can name a hidden case)."""
    return run_public(db, run, access.may(db, viewer, run.submission.assignment.course, Action.SEE_HIDDEN))


def visible_result(result: dict[str, Any] | None, assignment: Assignment, sees_hidden: bool) -> dict[str, Any] | None:
    """The result as a viewer may see it. Staff see every check in full. Students see "after_due_date" checks in
    full once the due date has passed, and "hidden" checks never (per spec); grader/hidden_checks.py decides."""
    if result is None or sees_hidden:
        return result
    return hidden_checks.student_result(result, hidden_checks.released(assignment.due_at))


def visible_message(run: GradingRun, sees_hidden: bool) -> str:
    """The run's message as a viewer may see it (it can name the case that was running when the job ended)."""
    if sees_hidden or not run.message:
        return run.message
    return hidden_checks.student_text(run.message, run.result, hidden_checks.released(run.submission.assignment.due_at))


def visible_event(data: dict[str, Any] | None, assignment: Assignment, sees_hidden: bool) -> dict[str, Any] | None:
    """A progress event as a viewer may see it: students see a withheld running case under a neutral label."""
    return visible_event_at(data, assignment.due_at, sees_hidden)


def visible_event_at(data: dict[str, Any] | None, due_at: datetime | None, sees_hidden: bool) -> dict[str, Any] | None:
    """visible_event for an assignment due at `due_at` (a progress stream reads the due date, not the assignment)."""
    if data is None or sees_hidden:
        return data
    return hidden_checks.student_event(data, hidden_checks.released(due_at))


def submission_status(run: GradingRun | None) -> str:
    return run.display_status if run is not None else "queued"


def submission_public(db: Session, submission: Submission, viewer: User) -> SubmissionPublic:
    assignment = submission.assignment
    sees_hidden = access.may(db, viewer, assignment.course, Action.SEE_HIDDEN)
    run = run_service.current_run(submission)
    pending = run_service.pending_run(submission)
    status_run = pending or run
    position, start = run_service.position_and_start(db, status_run) if status_run is not None else (None, None)
    finished = run is not None and run.finished
    counted = counted_score(submission)
    partial = status_run.result if status_run is not None else None
    return SubmissionPublic(
        id=submission.id, assignment=assignment.slug, user_id=submission.user_id, user_email=submission.user.email,
        filename=submission.filename, size_bytes=submission.size_bytes, sha256=submission.sha256,
        repo=submission.repo, commit=submission.commit, status=submission_status(status_run),
        score=counted.score if counted else None, earned_score=counted.earned if counted else None,
        max_score=counted.max_score if counted else assignment.max_score,
        passed=counted.passed if counted else None,
        result=visible_result(partial if pending is not None and partial else run.result if finished else None,
                              assignment, sees_hidden),
        queue_position=position, estimated_start=start,
        late=submission.late, late_days=submission.late_days, created_at=submission.created_at,
        runs=[run_public(db, r, sees_hidden, {status_run.id: position} if status_run is not None else None)
              for r in submission.runs if sees_hidden or r.applied])


def submission_summary(submission: Submission) -> SubmissionSummary:
    counted = counted_score(submission)
    return SubmissionSummary(
        id=submission.id, assignment=submission.assignment.slug, user_id=submission.user_id,
        user_email=submission.user.email, status=submission_status(run_service.status_run(submission)),
        score=counted.score if counted else None, max_score=counted.max_score if counted else None,
        late=submission.late, created_at=submission.created_at)


def enrollment_public(enrollment: Enrollment) -> EnrollmentPublic:
    return EnrollmentPublic(user_id=enrollment.user_id, email=enrollment.user.email, name=enrollment.user.name,
                            role=enrollment.role, student_number=enrollment.student_number)


def regrade_preview_public(preview: run_service.BatchPreview) -> RegradePreview:
    changes = [RegradeChange(submission_id=change.run.submission_id, user_id=change.run.submission.user_id,
                             user_email=change.run.submission.user.email, run_id=change.run.id,
                             status=change.run.status, old_score=change.old_score, new_score=change.new_score,
                             delta=change.delta) for change in preview.changes]
    return RegradePreview(batch_id=preview.batch_id, assignment=preview.assignment.slug, finished=preview.finished,
                          total=preview.total, ready=preview.ready, applied=preview.applied, changes=changes)
