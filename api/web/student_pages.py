"""The students' own pages: sign in with the course's API token (or a password set with it), then per assignment
the deadline that applies to them, a submit form, every submission with its status, and each submission's live
progress, feedback per check, training curve (with its data as a table), badge link and signature check.

Same session cookie and CSRF rules as the staff dashboard (api/web/security.py); what a student may see is decided
by grader/services/access.py like everywhere else (their own submissions; hidden checks withheld before the due
date, api/presenters.py)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, BackgroundTasks, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select

from api.deps import RowId, SessionDep, publish_after_response
from api.links import badge_links, public_base_url
from api.login_guard import client_address, login_throttle, wait_message
from api.presenters import visible_event, visible_result
from api.web import actions, charts, queries
from api.web.auth import CsrfChecked, Student
from api.web.rendering import number, redirect, render
from api.web.security import new_session, store_session
from grader.services import access, extensions, submissions
from grader.services import runs as run_service
from grader.services.errors import NotFound, ServiceError
from grader.services.policy import Action
from grader.services.scores import counted_score
from grader.settings import get_settings
from grader.store import credentials
from grader.store.models import Assignment, Enrollment, Submission, User

MIN_PASSWORD_LENGTH = 10
HISTORY_LIMIT = 200  # submissions listed per assignment page

router = APIRouter(include_in_schema=False)


def _safe_next(url: str | None) -> str:
    return url if url and url.startswith("/student/") and not url.startswith("//") else "/student/home"


def _signed_in(request: Request, user: User, target: str) -> Response:
    response = redirect(_safe_next(target))
    session = new_session(user.id, user.session_version)  # a fresh CSRF token, as for staff
    request.state.web_session = session
    store_session(request, response, session)
    return response


@router.get("/student/login")
def login_page(request: Request, next: str = "/student/home") -> HTMLResponse:
    return render(request, "student_login.html", {"next_url": _safe_next(next)})


@router.post("/student/login", dependencies=[CsrfChecked])
def login(request: Request, db: SessionDep, token: Annotated[str, Form()] = "", email: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/student/home") -> Response:
    """Sign in with the API token, or with the email and a password set earlier; throttled like the staff login."""
    key = email.strip().lower() or "token"
    throttle = login_throttle(request)
    attempt = throttle.attempt(f"student:{key}", client_address(request))
    context = {"next_url": _safe_next(next), "email": email}
    if attempt.refused:
        page = render(request, "student_login.html", {**context, "error": wait_message(attempt.retry_after_seconds)},
                      status_code=429)
        page.headers["Retry-After"] = str(attempt.retry_after_seconds)
        return page
    if token.strip():
        user = credentials.user_for_token(db, token.strip())
        error = "That token is not valid. Copy it again from your course (it starts with gt_)."
    else:
        user = credentials.authenticate_staff(db, email, password)
        error = "Wrong email or password. If you have not set a password yet, sign in with your token."
    if user is None:
        return render(request, "student_login.html", {**context, "error": error}, status_code=401)
    throttle.succeeded(attempt)
    return _signed_in(request, user, next)


@router.post("/student/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    response = redirect("/student/login", "You are signed out.")
    session = new_session()
    request.state.web_session = session
    store_session(request, response, session)
    return response


@router.post("/student/password", dependencies=[CsrfChecked])
def set_password(request: Request, db: SessionDep, user: Student, token: Annotated[str, Form()],
                 password: Annotated[str, Form()]) -> Response:
    """A password for the student page, set by proving the API token again; other sessions end."""
    if credentials.user_for_token(db, token.strip()) is not user:
        return redirect("/student/home", "Password not set: that is not your API token.")
    if len(password) < MIN_PASSWORD_LENGTH:
        return redirect("/student/home", f"Password not set: use at least {MIN_PASSWORD_LENGTH} characters.")
    user.password_hash = credentials.hash_password(password)
    user.session_version += 1
    db.flush()
    response = _signed_in(request, user, "/student/home")
    response.headers["Location"] += "?notice=" + quote("Password set. Next time sign in with your email and it.")
    return response


@router.get("/student/home")
def home(request: Request, db: SessionDep, user: Student) -> HTMLResponse:
    assignments = db.scalars(select(Assignment).join(Enrollment, Enrollment.course_id == Assignment.course_id)
                             .where(Enrollment.user_id == user.id).order_by(Assignment.id)).all()
    rows = [{"assignment": a, "deadline": extensions.deadline_for(db, a, user)} for a in assignments]
    return render(request, "student_home.html", {"student": user, "rows": rows})


def _submission_rows(db, assignment: Assignment, user: User) -> list[dict]:
    rows = []
    own = db.scalars(select(Submission).where(Submission.assignment_id == assignment.id, Submission.user_id == user.id)
                     .order_by(Submission.id.desc()).limit(HISTORY_LIMIT))
    for submission in own:
        run = run_service.status_run(submission)
        counted = counted_score(submission)
        position = run_service.queue_position(db, run) if run is not None and run.status == "queued" else None
        rows.append({"submission": submission, "run": run, "counted": counted, "queue_position": position})
    return rows


@router.get("/student/assignments/{slug}")
def assignment_page(slug: str, request: Request, db: SessionDep, user: Student) -> HTMLResponse:
    assignment = access.assignment_for(db, slug, user, Action.VIEW_COURSE)
    badge = credentials.badge_token_for(db, user, assignment)
    return render(request, "student_assignment.html", {
        "student": user, "assignment": assignment, "deadline": extensions.deadline_for(db, assignment, user),
        "rows": _submission_rows(db, assignment, user), "max_kib": get_settings().submission_max_bytes // 1024,
        "badge": badge_links(public_base_url(request), badge)})


@router.post("/student/assignments/{slug}/submit", dependencies=[CsrfChecked])
def submit(slug: str, db: SessionDep, user: Student, file: UploadFile, background: BackgroundTasks) -> Response:
    """The same upload as the API's (size, parse check, daily quota, lateness); a refusal loses nothing."""
    assignment = access.assignment_for(db, slug, user, Action.SUBMIT)
    raw = file.file.read(get_settings().submission_max_bytes + 1)
    try:
        accepted = submissions.accept_upload(db, assignment, user, filename=file.filename or "spatial.py", content=raw)
    except ServiceError as error:
        return redirect(f"/student/assignments/{assignment.slug}", f"Not submitted: {error}")
    publish_after_response(background, [] if accepted.reused else [accepted.run])
    return redirect(f"/student/submissions/{accepted.submission.id}", "Submitted. This page follows the grading live.")


def _own_submission(db, submission_id: int, user: User) -> Submission:
    return access.submission_for(db, submission_id, user, Action.READ_SUBMISSION)


@router.get("/student/submissions/{submission_id}")
def submission_page(submission_id: RowId, request: Request, db: SessionDep, user: Student) -> HTMLResponse:
    submission = _own_submission(db, submission_id, user)
    assignment = submission.assignment
    run = run_service.status_run(submission)
    view = None
    if run is not None:
        sees_hidden = access.may(db, user, assignment.course, Action.SEE_HIDDEN)
        view = queries.run_view(run)
        shown = visible_result(run.result, assignment, sees_hidden)
        view.checks = queries.check_views(shown)
        view.message = (shown or {}).get("message", "")
    position = run_service.queue_position(db, run) if run is not None and run.status == "queued" else None
    return render(request, "student_submission.html", {
        "student": user, "submission": submission, "assignment": assignment, "current": view,
        "counted": counted_score(submission), "queue_position": position,
        "deadline": extensions.deadline_for(db, assignment, user)})


@router.get("/student/submissions/{submission_id}/live.json")
def live_submission(submission_id: RowId, db: SessionDep, user: Student) -> JSONResponse:
    submission = _own_submission(db, submission_id, user)
    run = run_service.status_run(submission)
    if run is None:
        return JSONResponse({"status": "none", "finished": False, "score_text": "", "progress_text": ""})
    event = visible_event(run_service.last_progress(db, run) if not run.finished else None, submission.assignment,
                          access.may(db, user, submission.assignment.course, Action.SEE_HIDDEN))
    progress = actions.describe_progress(run, event)
    if run.status == "queued":
        position = run_service.queue_position(db, run)
        progress += f" · place {position} in the queue" if position else ""
    return JSONResponse({
        "status": run.display_status, "finished": run.finished,
        "score_text": f"{number(run.score)}/{number(run.max_score)}" if run.finished else "",
        "progress_text": progress}, headers={"Cache-Control": "no-store"})


@router.get("/student/submissions/{submission_id}/runs/{run_id}/curve.svg")
def training_curve(submission_id: RowId, run_id: RowId, db: SessionDep, user: Student) -> Response:
    submission = _own_submission(db, submission_id, user)
    run = next((run for run in submission.runs if run.id == run_id and run.applied), None)
    if run is None:
        raise NotFound("no such run")
    return Response(charts.training_curve(queries.training_epochs(run.result)), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=5"})
