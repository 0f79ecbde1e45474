"""The dashboard's forms: create an assignment, upload a roster, regrade (one, or all through a preview), export
grades, rotate a badge. Every state change is a POST carrying the session's CSRF token; every page is scoped to
the courses the user staffs (grader/services/access.py), like the API."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from api.deps import RowId, SessionDep, publish_after_response
from api.downloads import content_disposition
from api.web import actions
from api.web.auth import CsrfChecked, Staff
from api.web.rendering import redirect, render
from grader.kits import MAX_UPLOAD_BYTES as MAX_KIT_BYTES
from grader.services import access, badges, courses, grades, submissions
from grader.services import kits as kit_service
from grader.services import runs as run_service
from grader.services.errors import ServiceError
from grader.services.policy import Action

router = APIRouter(include_in_schema=False)


@router.post("/dashboard/courses/{slug}/assignments", dependencies=[CsrfChecked])
def create_assignment(slug: str, db: SessionDep, user: Staff,
                      assignment_slug: Annotated[str, Form(alias="slug")], title: Annotated[str, Form()],
                      due_at: Annotated[str, Form()] = "", pass_mark: Annotated[str, Form()] = "",
                      with_training: Annotated[bool, Form()] = False) -> Response:
    course = access.course_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    try:
        assignment = actions.create_assignment(db, course, slug=assignment_slug, title=title, due_at=due_at,
                                               pass_mark=pass_mark, with_training=with_training)
    except ServiceError as error:
        return redirect(f"/dashboard/courses/{course.slug}", f"Not created: {error}")
    return redirect(f"/dashboard/assignments/{assignment.slug}", f"Assignment {assignment.slug} created.")


@router.post("/dashboard/courses/{slug}/roster", dependencies=[CsrfChecked])
async def upload_roster(slug: str, request: Request, db: SessionDep, user: Staff, file: UploadFile) -> Response:
    course = access.course_for(db, slug, user, Action.EDIT_ROSTER)
    try:
        entries = courses.import_roster(db, course, user, await file.read(courses.ROSTER_MAX_BYTES + 1))
    except ServiceError as error:
        return redirect(f"/dashboard/courses/{course.slug}", f"Roster not imported: {error}")
    summary, tokens = actions.roster_summary(entries)
    return render(request, "roster_result.html", {"user": user, "course": course, "summary": summary,
                                                  "tokens": tokens})


@router.post("/dashboard/courses/{slug}/kits", dependencies=[CsrfChecked])
async def upload_kit(slug: str, db: SessionDep, user: Staff, file: UploadFile) -> Response:
    course = access.course_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    try:
        stored = kit_service.upload_kit(await file.read(MAX_KIT_BYTES + 1))
    except ServiceError as error:
        return redirect(f"/dashboard/courses/{course.slug}", f"Kit not stored: {error}")
    return redirect(f"/dashboard/courses/{course.slug}",
                    f'Kit stored ({stored.files} Python files). Put kit = "{stored.reference}" in the [assignment] '
                    "table of an assignment's spec to grade against it.")


@router.post("/dashboard/submissions/{submission_id}/regrade", dependencies=[CsrfChecked])
def regrade_submission(submission_id: RowId, db: SessionDep, user: Staff, background: BackgroundTasks) -> Response:
    submission = access.submission_for(db, submission_id, user, Action.REGRADE)
    run = submissions.regrade(db, submission, user)
    publish_after_response(background, [run])
    return redirect(f"/dashboard/submissions/{submission.id}", f"Regrade queued (run {run.id}).")


@router.post("/dashboard/assignments/{slug}/regrade", dependencies=[CsrfChecked])
def regrade_all(slug: str, db: SessionDep, user: Staff, background: BackgroundTasks) -> Response:
    assignment = access.assignment_for(db, slug, user, Action.REGRADE)
    batch_id, runs = run_service.start_regrade_batch(db, assignment, user)
    publish_after_response(background, runs)
    return redirect(f"/dashboard/assignments/{assignment.slug}/regrade/{batch_id}")


@router.get("/dashboard/assignments/{slug}/regrade/{batch_id}")
def regrade_preview_page(slug: str, batch_id: str, request: Request, db: SessionDep, user: Staff) -> Response:
    assignment = access.assignment_for(db, slug, user, Action.REGRADE)
    base = f"/dashboard/assignments/{assignment.slug}/regrade/{quote(batch_id)}"
    preview = actions.preview_view(run_service.preview_batch(db, assignment, batch_id))
    return render(request, "regrade_preview.html", {
        "user": user, "assignment": assignment, "preview": preview, "live_url": f"{base}/live.json",
        "confirm_url": f"{base}/confirm"})


@router.get("/dashboard/assignments/{slug}/regrade/{batch_id}/live.json")
def regrade_preview_live(slug: str, batch_id: str, db: SessionDep, user: Staff) -> JSONResponse:
    assignment = access.assignment_for(db, slug, user, Action.REGRADE)
    preview = run_service.preview_batch(db, assignment, batch_id)
    return JSONResponse({"done": preview.ready}, headers={"Cache-Control": "no-store"})


@router.post("/dashboard/assignments/{slug}/regrade/{batch_id}/confirm", dependencies=[CsrfChecked])
def regrade_confirm(slug: str, batch_id: str, db: SessionDep, user: Staff) -> Response:
    assignment = access.assignment_for(db, slug, user, Action.REGRADE)
    try:
        preview = run_service.apply_batch(db, assignment, batch_id, user)
    except ServiceError as error:
        return redirect(f"/dashboard/assignments/{assignment.slug}/regrade/{quote(batch_id)}", str(error))
    return redirect(f"/dashboard/assignments/{assignment.slug}",
                    f"Regrade applied: {len(preview.changes)} score(s) changed.")


@router.get("/dashboard/assignments/{slug}/grades.csv")
def grades_csv(slug: str, db: SessionDep, user: Staff, policy: Literal["best", "latest"] = "best") -> Response:
    assignment = access.assignment_for(db, slug, user, Action.EXPORT_GRADES)
    filename = grades.grades_filename(assignment, policy)
    return Response(grades.grades_csv(db, assignment, policy), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": content_disposition("attachment", filename),
                             "Cache-Control": "no-store"})


@router.post("/dashboard/assignments/{slug}/badges/{user_id}/rotate", dependencies=[CsrfChecked])
def rotate_badge(slug: str, user_id: RowId, db: SessionDep, user: Staff) -> Response:
    assignment = access.assignment_for(db, slug, user, Action.ROTATE_BADGE)
    student = access.enrolled_user(db, assignment.course, user_id)
    badges.rotate(db, student, assignment)
    return redirect(f"/dashboard/assignments/{assignment.slug}", f"New badge URL for {student.email}.")
