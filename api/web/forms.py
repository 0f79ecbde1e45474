"""The dashboard's forms: create an assignment, upload a roster, regrade (one, or all through a preview), export
grades, rotate a badge. Every state change is a POST carrying the session's CSRF token."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from api.deps import SessionDep
from api.web import actions
from api.web.auth import CsrfChecked, Instructor
from api.web.queries import assignment_or_404, course_or_404, submission_or_404
from api.web.rendering import redirect, render
from grader.store import credentials
from grader.store.models import Assignment, Enrollment, User

router = APIRouter(include_in_schema=False)


@router.post("/dashboard/courses/{slug}/assignments", dependencies=[CsrfChecked])
def create_assignment(slug: str, db: SessionDep, user: Instructor,
                      assignment_slug: Annotated[str, Form(alias="slug")], title: Annotated[str, Form()],
                      due_at: Annotated[str, Form()] = "", pass_mark: Annotated[str, Form()] = "",
                      with_training: Annotated[bool, Form()] = False) -> Response:
    course = course_or_404(db, slug)
    try:
        assignment = actions.create_assignment(db, course, user, slug=assignment_slug, title=title, due_at=due_at,
                                               pass_mark=pass_mark, with_training=with_training)
    except actions.ActionError as error:
        return redirect(f"/dashboard/courses/{course.slug}", f"Not created: {error}")
    return redirect(f"/dashboard/assignments/{assignment.slug}", f"Assignment {assignment.slug} created.")


@router.post("/dashboard/courses/{slug}/roster", dependencies=[CsrfChecked])
async def upload_roster(slug: str, request: Request, db: SessionDep, user: Instructor, file: UploadFile) -> Response:
    course = course_or_404(db, slug)
    try:
        summary, tokens = await actions.import_roster(db, course, user, file)
    except actions.ActionError as error:
        return redirect(f"/dashboard/courses/{course.slug}", f"Roster not imported: {error}")
    return render(request, "roster_result.html", {"user": user, "course": course, "summary": summary,
                                                  "tokens": tokens})


@router.post("/dashboard/submissions/{submission_id}/regrade", dependencies=[CsrfChecked])
def regrade_submission(submission_id: int, db: SessionDep, user: Instructor, background: BackgroundTasks) -> Response:
    submission = submission_or_404(db, submission_id)
    run = actions.regrade_submission(db, submission, user, background)
    return redirect(f"/dashboard/submissions/{submission.id}", f"Regrade queued (run {run.id}).")


@router.post("/dashboard/assignments/{slug}/regrade", dependencies=[CsrfChecked])
def regrade_all(slug: str, db: SessionDep, user: Instructor, background: BackgroundTasks) -> Response:
    assignment = assignment_or_404(db, slug)
    batch_id = actions.start_regrade_all(db, assignment, user, background)
    return redirect(f"/dashboard/assignments/{assignment.slug}/regrade/{batch_id}")


def _preview(db, assignment: Assignment, batch_id: str, user: User) -> actions.PreviewView:
    try:
        return actions.regrade_preview(db, assignment, batch_id, user)
    except actions.ActionError:
        raise HTTPException(404, "no such regrade") from None


@router.get("/dashboard/assignments/{slug}/regrade/{batch_id}")
def regrade_preview_page(slug: str, batch_id: str, request: Request, db: SessionDep, user: Instructor) -> Response:
    assignment = assignment_or_404(db, slug)
    base = f"/dashboard/assignments/{assignment.slug}/regrade/{quote(batch_id)}"
    return render(request, "regrade_preview.html", {
        "user": user, "assignment": assignment, "preview": _preview(db, assignment, batch_id, user),
        "live_url": f"{base}/live.json", "confirm_url": f"{base}/confirm"})


@router.get("/dashboard/assignments/{slug}/regrade/{batch_id}/live.json")
def regrade_preview_live(slug: str, batch_id: str, db: SessionDep, user: Instructor) -> JSONResponse:
    preview = _preview(db, assignment_or_404(db, slug), batch_id, user)
    return JSONResponse({"done": preview.done}, headers={"Cache-Control": "no-store"})


@router.post("/dashboard/assignments/{slug}/regrade/{batch_id}/confirm", dependencies=[CsrfChecked])
def regrade_confirm(slug: str, batch_id: str, db: SessionDep, user: Instructor) -> Response:
    assignment = assignment_or_404(db, slug)
    try:
        changed = actions.confirm_regrade(db, assignment, batch_id, user)
    except actions.ActionError as error:
        return redirect(f"/dashboard/assignments/{assignment.slug}/regrade/{quote(batch_id)}", str(error))
    return redirect(f"/dashboard/assignments/{assignment.slug}", f"Regrade applied: {changed} score(s) changed.")


@router.get("/dashboard/assignments/{slug}/grades.csv")
def grades_csv(slug: str, db: SessionDep, user: Instructor, policy: str = "best") -> Response:
    assignment = assignment_or_404(db, slug)
    if policy not in ("best", "latest"):
        raise HTTPException(422, "policy must be best or latest")
    body = actions.grades_csv(db, assignment, user, policy)
    filename = f"{assignment.slug}-grades-{policy}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.post("/dashboard/assignments/{slug}/badges/{user_id}/rotate", dependencies=[CsrfChecked])
def rotate_badge(slug: str, user_id: int, db: SessionDep, user: Instructor) -> Response:
    assignment = assignment_or_404(db, slug)
    student = db.get(User, user_id)
    enrolled = student is not None and db.scalar(select(Enrollment.id).where(
        Enrollment.course_id == assignment.course_id, Enrollment.user_id == student.id)) is not None
    if not enrolled:
        raise HTTPException(404, "no such student in this course")
    credentials.rotate_badge_token(db, student, assignment)
    return redirect(f"/dashboard/assignments/{assignment.slug}", f"New badge URL for {student.email}.")
