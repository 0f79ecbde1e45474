"""An assignment: reading it, submitting to it, listing submissions, exporting grades, regrading all of it."""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import secrets
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, File, Form, HTTPException, Query, UploadFile, status
from fastapi.responses import Response
from sqlalchemy import select

from api.access import assignment_for
from api.routes.courses import pass_mark_points
from api.deps import CurrentInstructor, CurrentUser, SessionDep
from api.presenters import assignment_public, submission_summary
from api.schemas import (AssignmentPublic, AssignmentUpdate, AssignmentWithSpec, RegradeBatchAccepted, RegradeChange,
                         RegradePreview, SubmissionAccepted, SubmissionSummary)
from grader.settings import get_settings
from grader.store import audit, lateness, queue_estimates, rations
from grader.store import runs as run_store
from grader.store.models import Enrollment, GradingRun, Submission, utcnow
from grader.store.signing import verify_run
from grader.tasks import publish_all

router = APIRouter(prefix="/api/v1/assignments", tags=["assignments"])


@router.get("/{slug}")
def read_assignment(slug: str, db: SessionDep, user: CurrentUser) -> AssignmentPublic | AssignmentWithSpec:
    """Due date, pass mark, full marks and stages; instructors also get the spec text."""
    assignment = assignment_for(db, slug, user)
    public = assignment_public(assignment)
    if user.is_instructor:
        return AssignmentWithSpec(**public.model_dump(), spec_toml=assignment.spec_toml)
    return public


@router.patch("/{slug}")
def update_assignment(slug: str, body: AssignmentUpdate, db: SessionDep,
                      instructor: CurrentInstructor) -> AssignmentPublic:
    assignment = assignment_for(db, slug, instructor)
    changes = body.model_dump(exclude_unset=True)
    for field in ("title", "due_at", "daily_submission_limit"):
        if field in changes:
            setattr(assignment, field, changes[field])
    if body.late_policy is not None:
        assignment.late_policy = body.late_policy.model_dump()
    if body.pass_mark is not None:
        assignment.pass_mark = pass_mark_points(body.pass_mark, assignment.max_score)
    db.flush()
    return assignment_public(assignment)


def _python_text(raw: bytes) -> str:
    """The upload as text, if it is a Python source file; else a 422 saying what is wrong."""
    if not raw.strip():
        raise HTTPException(422, "The file is empty. Upload your spatial.py.")
    if b"\x00" in raw:
        raise HTTPException(422, "This is a binary file, not Python source. Upload your spatial.py as text.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise HTTPException(422, f"The file is not UTF-8 text (byte {error.start} cannot be decoded). "
                                 "Upload your spatial.py as saved by your editor.") from error
    try:
        ast.parse(text, filename="spatial.py")
    except SyntaxError as error:
        raise HTTPException(422, f"spatial.py does not parse as Python: {error.msg} at line {error.lineno}. "
                                 "Fix it and submit again (this upload did not count).") from error
    except (RecursionError, MemoryError, ValueError) as error:
        raise HTTPException(422, "spatial.py could not be parsed as Python (it nests too deeply).") from error
    return text


@router.post("/{slug}/submissions", status_code=status.HTTP_202_ACCEPTED)
def create_submission(slug: str, file: Annotated[UploadFile, File(description="your spatial.py")],
                            db: SessionDep, user: CurrentUser, background: BackgroundTasks,
                            repo: Annotated[str, Form(max_length=500)] = "",
                            commit: Annotated[str, Form(max_length=64)] = "") -> SubmissionAccepted:
    """Upload spatial.py for grading. It is stored before it is queued; lateness is judged by this moment."""
    assignment = assignment_for(db, slug, user)
    limit = get_settings().submission_max_bytes
    # A plain function (FastAPI runs it in its thread pool): its database work must not block the event loop.
    raw = file.file.read(limit + 1)
    if len(raw) > limit:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                            f"The file is larger than {limit // 1024} KiB; spatial.py should be far smaller.")
    _python_text(raw)
    now = utcnow()
    if rations.submissions_today(db, assignment, user, now) >= assignment.daily_submission_limit:
        resets = rations.day_start(now) + timedelta(days=1)
        retry_after = max(1, int((resets - now).total_seconds()))
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"You have used today's {assignment.daily_submission_limit} submissions for "
                            f"{assignment.slug}. The limit resets at {resets:%Y-%m-%d %H:%M} UTC.",
                            headers={"Retry-After": str(retry_after), "X-RateLimit-Reset": resets.isoformat()})
    days_late = lateness.late_days(assignment, now)
    submission = Submission(assignment=assignment, user=user, filename=(file.filename or "spatial.py")[:200],
                            content=raw, size_bytes=len(raw), sha256=hashlib.sha256(raw).hexdigest(),
                            repo=repo.strip(), commit=commit.strip(), created_at=now, late=days_late > 0,
                            late_days=days_late)
    db.add(submission)
    db.flush()
    source_run = run_store.reusable_run(db, submission)
    if source_run is not None:
        run = run_store.reuse_run(db, submission, source_run, user.id)
    else:
        run = run_store.new_run(db, submission, kind="submit", requested_by=user.id)
        # Published after the response's session committed, so a worker always finds the row.
        background.add_task(publish_all, [(run.id, run.queue)])
    position = queue_estimates.queue_position(db, run)
    return SubmissionAccepted(submission_id=submission.id, run_id=run.id, status=run.status,
                              status_url=f"/api/v1/submissions/{submission.id}", queue_position=position,
                              estimated_start=queue_estimates.estimated_start(db, run, position), late=submission.late,
                              reused=source_run is not None)


@router.get("/{slug}/submissions")
def list_submissions(slug: str, db: SessionDep, user: CurrentUser,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[SubmissionSummary]:
    """A student's own submissions; an instructor sees everyone's. Newest first."""
    assignment = assignment_for(db, slug, user)
    query = select(Submission).where(Submission.assignment_id == assignment.id)
    if not user.is_instructor:
        query = query.where(Submission.user_id == user.id)
    query = query.order_by(Submission.id.desc()).limit(limit)
    return [submission_summary(s) for s in db.scalars(query)]


def _signed_score(submission: Submission) -> tuple[float, GradingRun] | None:
    """The submission's counted score with the late penalty applied, from a run whose signature verifies."""
    run = run_store.current_run(submission)
    if run is None or not run.finished or run.score is None or not verify_run(run):
        return None
    return run.score * lateness.late_factor(submission.assignment, submission.late_days), run


@router.get("/{slug}/grades.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "one row per enrolled student"}})
def export_grades(slug: str, db: SessionDep, instructor: CurrentInstructor,
                  policy: Literal["best", "latest"] = "best") -> Response:
    """Gradebook CSV: one row per enrolled student, late penalty applied, only from signed runs."""
    assignment = assignment_for(db, slug, instructor)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["student_number", "email", "name", "score", "max_score", "submission_id", "run_id", "late_days",
                     "submitted_at"])
    enrollments = db.scalars(select(Enrollment).where(Enrollment.course_id == assignment.course_id,
                                                      Enrollment.role == "student").order_by(Enrollment.id))
    for enrollment in enrollments:
        submissions = db.scalars(select(Submission).where(
            Submission.assignment_id == assignment.id, Submission.user_id == enrollment.user_id)
            .order_by(Submission.id)).all()
        scored = [(s, _signed_score(s)) for s in submissions]
        scored = [(s, pair) for s, pair in scored if pair is not None]
        chosen = None
        if scored:
            chosen = scored[-1] if policy == "latest" else max(scored, key=lambda item: (item[1][0], item[0].id))
        user = enrollment.user
        if chosen is None:
            writer.writerow([enrollment.student_number, user.email, user.name, "", assignment.max_score, "", "", "",
                             ""])
        else:
            submission, (score, run) = chosen
            writer.writerow([enrollment.student_number, user.email, user.name, f"{score:.2f}",
                             f"{run.max_score if run.max_score is not None else assignment.max_score:g}",
                             submission.id, run.id, submission.late_days, submission.created_at.isoformat()])
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{assignment.slug}-grades-{policy}.csv"'})


@router.post("/{slug}/regrade", status_code=status.HTTP_202_ACCEPTED)
def regrade_assignment(slug: str, db: SessionDep, instructor: CurrentInstructor,
                       background: BackgroundTasks) -> RegradeBatchAccepted:
    """Grade every submission again as a preview; nothing changes for students until the batch is applied."""
    assignment = assignment_for(db, slug, instructor)
    batch_id = secrets.token_hex(8)
    pairs = []
    for submission in db.scalars(select(Submission).where(Submission.assignment_id == assignment.id)):
        run = run_store.new_run(db, submission, kind="preview", requested_by=instructor.id, applied=False,
                                batch_id=batch_id)
        pairs.append((run.id, run.queue))
    background.add_task(publish_all, pairs)
    return RegradeBatchAccepted(batch_id=batch_id, runs=len(pairs),
                                preview_url=f"/api/v1/assignments/{slug}/regrades/{batch_id}")


def _batch_runs(db: SessionDep, slug: str, batch_id: str, instructor) -> tuple[str, list[GradingRun]]:
    assignment = assignment_for(db, slug, instructor)
    batch = db.scalars(select(GradingRun).join(Submission).where(
        GradingRun.batch_id == batch_id, Submission.assignment_id == assignment.id).order_by(GradingRun.id)).all()
    if not batch:
        raise HTTPException(404, f"Regrade batch {batch_id!r} not found.")
    return assignment.slug, list(batch)


def _preview(slug: str, batch_id: str, batch: list[GradingRun]) -> RegradePreview:
    changes = []
    for run in batch:
        earlier = [r for r in run.submission.runs if r.applied and r.finished and r.id < run.id and r.batch_id != batch_id]
        old = earlier[-1].score if earlier else None
        if run.finished and run.score != old:
            changes.append(RegradeChange(
                submission_id=run.submission_id, user_id=run.submission.user_id, user_email=run.submission.user.email,
                run_id=run.id, status=run.status, old_score=old, new_score=run.score,
                delta=None if old is None or run.score is None else run.score - old))
    finished = sum(run.finished for run in batch)
    return RegradePreview(batch_id=batch_id, assignment=slug, finished=finished, total=len(batch),
                          ready=finished == len(batch), applied=all(run.applied for run in batch), changes=changes)


@router.get("/{slug}/regrades/{batch_id}")
def preview_regrade(slug: str, batch_id: str, db: SessionDep, instructor: CurrentInstructor) -> RegradePreview:
    """Whose score would change, and by how much, if the batch were applied."""
    slug, batch = _batch_runs(db, slug, batch_id, instructor)
    return _preview(slug, batch_id, batch)


@router.post("/{slug}/regrades/{batch_id}/apply")
def apply_regrade(slug: str, batch_id: str, db: SessionDep, instructor: CurrentInstructor) -> RegradePreview:
    """Make the batch's results count; every score change goes to the audit log."""
    slug, batch = _batch_runs(db, slug, batch_id, instructor)
    preview = _preview(slug, batch_id, batch)
    if preview.applied:
        raise HTTPException(status.HTTP_409_CONFLICT, "This regrade was applied already.")
    if not preview.ready:
        raise HTTPException(status.HTTP_409_CONFLICT, f"Only {preview.finished} of {preview.total} runs of this "
                                                      "regrade have finished; apply it when all have.")
    changed = {change.run_id for change in preview.changes}
    for run in batch:
        run.applied, run.kind = True, "regrade"
        db.flush()
        if run.id in changed:
            audit.record_score_change(db, run, actor_id=instructor.id, action="regrade")
    return _preview(slug, batch_id, batch)
