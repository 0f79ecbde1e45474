"""An assignment: reading it, submitting to it, listing submissions, exporting grades, regrading all of it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, File, Form, Query, UploadFile, status
from fastapi.responses import Response

from api.deps import CurrentUser, SessionDep, publish_after_response
from api.downloads import content_disposition
from api.presenters import assignment_public, regrade_preview_public, submission_summary
from api.schemas import (AssignmentPublic, AssignmentUpdate, AssignmentWithSpec, RegradeBatchAccepted,
                         RegradePreview, SubmissionAccepted, SubmissionSummary)
from grader.services import access, courses, grades, submissions
from grader.services import runs as run_service
from grader.services.policy import Action
from grader.settings import get_settings

router = APIRouter(prefix="/api/v1/assignments", tags=["assignments"])


@router.get("/{slug}")
def read_assignment(slug: str, db: SessionDep, user: CurrentUser) -> AssignmentPublic | AssignmentWithSpec:
    """Due date, pass mark, full marks and stages; the course's staff also get the spec text."""
    assignment = access.assignment_for(db, slug, user)
    public = assignment_public(assignment)
    if access.may(db, user, assignment.course, Action.SEE_HIDDEN):
        return AssignmentWithSpec(**public.model_dump(), spec_toml=assignment.spec_toml)
    return public


@router.patch("/{slug}")
def update_assignment(slug: str, body: AssignmentUpdate, db: SessionDep, user: CurrentUser) -> AssignmentPublic:
    """Change the title, due date, late policy, daily limit or pass mark (the course's instructors)."""
    assignment = access.assignment_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    return assignment_public(courses.update_assignment(db, assignment, body.model_dump(exclude_unset=True),
                                                                actor_id=user.id))


@router.post("/{slug}/submissions", status_code=status.HTTP_202_ACCEPTED)
def create_submission(slug: str, file: Annotated[UploadFile, File(description="your spatial.py")],
                      db: SessionDep, user: CurrentUser, background: BackgroundTasks,
                      repo: Annotated[str, Form(max_length=500)] = "",
                      commit: Annotated[str, Form(max_length=64)] = "") -> SubmissionAccepted:
    """Upload spatial.py for grading. It is stored before it is queued; lateness is judged by this moment."""
    assignment = access.assignment_for(db, slug, user, Action.SUBMIT)
    # A plain function (FastAPI runs it in its thread pool): its database work must not block the event loop.
    raw = file.file.read(get_settings().submission_max_bytes + 1)
    accepted = submissions.accept_upload(db, assignment, user, filename=file.filename or "spatial.py", content=raw,
                                         repo=repo, commit=commit)
    publish_after_response(background, [] if accepted.reused else [accepted.run])
    run = accepted.run
    position, start = run_service.position_and_start(db, run)
    return SubmissionAccepted(submission_id=accepted.submission.id, run_id=run.id, status=run.status,
                              status_url=f"/api/v1/submissions/{accepted.submission.id}", queue_position=position,
                              estimated_start=start,
                              late=accepted.submission.late, reused=accepted.reused)


@router.get("/{slug}/submissions")
def list_submissions(slug: str, db: SessionDep, user: CurrentUser,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[SubmissionSummary]:
    """A student's own submissions; the course's staff see everyone's. Newest first."""
    assignment = access.assignment_for(db, slug, user)
    return [submission_summary(s) for s in submissions.list_for(db, assignment, user, limit)]


@router.get("/{slug}/grades.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "one row per enrolled student"}})
def export_grades(slug: str, db: SessionDep, user: CurrentUser,
                  policy: Literal["best", "latest"] = "best") -> Response:
    """Gradebook CSV: one row per enrolled student, by the counted-score rule (signed runs, late penalty)."""
    assignment = access.assignment_for(db, slug, user, Action.EXPORT_GRADES)
    filename = grades.grades_filename(assignment, policy)
    return Response(grades.grades_csv(db, assignment, policy), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": content_disposition("attachment", filename)})


@router.post("/{slug}/regrade", status_code=status.HTTP_202_ACCEPTED)
def regrade_assignment(slug: str, db: SessionDep, user: CurrentUser,
                       background: BackgroundTasks) -> RegradeBatchAccepted:
    """Grade every submission again as a preview; nothing changes for students until the batch is applied."""
    assignment = access.assignment_for(db, slug, user, Action.REGRADE)
    batch_id, runs = run_service.start_regrade_batch(db, assignment, user)
    publish_after_response(background, runs)
    return RegradeBatchAccepted(batch_id=batch_id, runs=len(runs),
                                preview_url=f"/api/v1/assignments/{assignment.slug}/regrades/{batch_id}")


@router.get("/{slug}/regrades/{batch_id}")
def preview_regrade(slug: str, batch_id: str, db: SessionDep, user: CurrentUser) -> RegradePreview:
    """Whose score would change, and by how much, if the batch were applied."""
    assignment = access.assignment_for(db, slug, user, Action.REGRADE)
    return regrade_preview_public(run_service.preview_batch(db, assignment, batch_id))


@router.post("/{slug}/regrades/{batch_id}/apply")
def apply_regrade(slug: str, batch_id: str, db: SessionDep, user: CurrentUser) -> RegradePreview:
    """Make the batch's results count; every score change goes to the audit log."""
    assignment = access.assignment_for(db, slug, user, Action.REGRADE)
    return regrade_preview_public(run_service.apply_batch(db, assignment, batch_id, user))
