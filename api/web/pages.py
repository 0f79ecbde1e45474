"""Server-rendered instructor dashboard (Jinja2): login, course, assignment and submission pages, actions."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, BackgroundTasks, Depends, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from sqlalchemy import func, select

from api.routes.badges import badge_links
from api.routes.me import public_base_url
from api.web import actions, charts, queries
from api.deps import SessionDep
from api.web.security import (clear_session, load_session, login_throttle, new_session, require_csrf,
                              store_session)
from grader.store import credentials
from grader.store.models import Assignment, Course, Enrollment, GradingRun, Submission, User
from grader.store.runs import current_run

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
CLIENT_SCRIPT = WEB_DIR.parent.parent / "grader" / "commands" / "submit.py"
CHART_NAMES = (("scores", "Histogram of best scores"), ("checks", "Pass rate per check"),
               ("accuracy", "CIFAR-10 accuracy distribution"), ("timeline", "Submissions over time"))

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
_formatter = HtmlFormatter(linenos="table", cssclass="highlight")
PYGMENTS_CSS = _formatter.get_style_defs(".highlight")

# Pages may load scripts, styles and images only from this server; no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _number(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def _signed_number(value: Any) -> str:
    return "–" if value is None else ("+" if float(value) > 0 else "") + _number(value)


def _percent(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def _stage_weights(weights: dict[str, Any]) -> str:
    return ", ".join(f"{name} {_number(points)}" for name, points in (weights or {}).items())


templates.env.filters.update(when=_when, number=_number, signed_number=_signed_number, percent=_percent,
                             stage_weights=_stage_weights)


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A page with the session's CSRF token in its forms; sets the session cookie when it is new."""
    session = load_session(request)
    context = {"user": None, "notice": request.query_params.get("notice"), "error": None, **context,
               "csrf_token": session.csrf_token}
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    store_session(request, response, session)
    return response


def _login_redirect(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "log in first", headers={"Location": f"/login?next={quote(target, safe='')}"})


def current_instructor(request: Request, db: SessionDep) -> User:
    """The logged-in instructor; anyone else is sent to the login page."""
    session = load_session(request)
    user = db.get(User, session.user_id) if session.user_id is not None else None
    if user is None or not user.is_instructor:
        raise _login_redirect(request)
    return user


Instructor = Annotated[User, Depends(current_instructor)]
CsrfChecked = Depends(require_csrf)


def _redirect(url: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        url += ("&" if "?" in url else "?") + "notice=" + quote(notice)
    return RedirectResponse(url, status_code=303)


def _safe_next(url: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not url or not url.startswith("/") or url.startswith("//") or urlsplit(url).netloc:
        return "/dashboard"
    return url


def _course(db, slug: str) -> Course:
    course = db.scalar(select(Course).where(Course.slug == slug))
    if course is None:
        raise HTTPException(404, "no such course")
    return course


def _assignment(db, slug: str) -> Assignment:
    assignment = db.scalar(select(Assignment).where(Assignment.slug == slug))
    if assignment is None:
        raise HTTPException(404, "no such assignment")
    return assignment


def _submission(db, submission_id: int) -> Submission:
    submission = db.get(Submission, submission_id)
    if submission is None:
        raise HTTPException(404, "no such submission")
    return submission


# Login and logout


@router.get("/login")
def login_page(request: Request, next: str = "/dashboard") -> HTMLResponse:
    return render(request, "login.html", {"next_url": _safe_next(next)})


@router.post("/login", dependencies=[CsrfChecked])
def login(request: Request, db: SessionDep, email: Annotated[str, Form()], password: Annotated[str, Form()],
          next: Annotated[str, Form()] = "/dashboard") -> Response:
    email = email.strip().lower()
    throttle_key = (email, request.client.host if request.client else "")
    wait = login_throttle.retry_after(throttle_key)
    if wait:
        return render(request, "login.html", {
            "next_url": _safe_next(next), "email": email,
            "error": f"Too many failed logins. Try again in {max(1, round(wait / 60))} minute(s)."}, status_code=429)
    user = db.scalar(select(User).where(User.email == email))
    # Verify against a dummy hash when the user is unknown, so timing does not reveal which emails exist.
    valid = credentials.verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not valid or not user.is_instructor:
        login_throttle.failed(throttle_key)
        return render(request, "login.html", {"next_url": _safe_next(next), "email": email,
                                              "error": "Wrong email or password."}, status_code=401)
    login_throttle.succeeded(throttle_key)
    response = _redirect(_safe_next(next))
    session = new_session(user.id)  # a fresh CSRF token: a session planted before login is useless after it
    request.state.web_session = session
    store_session(request, response, session)
    return response


_DUMMY_HASH = credentials.hash_password("not-a-real-password")


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    response = _redirect("/login", "You are logged out.")
    clear_session(request, response)
    return response


# Pages


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/dashboard")
def courses_page(request: Request, db: SessionDep, user: Instructor) -> Response:
    courses = db.scalars(select(Course).order_by(Course.id)).all()
    if len(courses) == 1 and not request.query_params.get("notice"):
        return _redirect(f"/dashboard/courses/{courses[0].slug}")
    return render(request, "courses.html", {"user": user, "courses": courses})


@router.get("/dashboard/courses/{slug}")
def course_page(slug: str, request: Request, db: SessionDep, user: Instructor) -> HTMLResponse:
    course = _course(db, slug)
    return render(request, "course.html", {
        "user": user, "course": course, "counts": queries.submission_counts(db, course),
        "students": queries.student_count(db, course), "queue": queries.queue_state(db, course)})


@router.get("/dashboard/assignments/{slug}")
def assignment_page(slug: str, request: Request, db: SessionDep, user: Instructor) -> HTMLResponse:
    assignment = _assignment(db, slug)
    rows = queries.student_rows(db, assignment)
    # Chart URLs change whenever a run is added or finishes, so a cached chart is never stale.
    latest_run, finished = db.execute(
        select(func.max(GradingRun.id), func.count(GradingRun.finished_at)).join(Submission)
        .where(Submission.assignment_id == assignment.id)).one()
    return render(request, "assignment.html", {
        "user": user, "assignment": assignment, "rows": rows, "charts": CHART_NAMES,
        "chart_version": f"{latest_run or 0}-{finished}"})


@router.get("/dashboard/assignments/{slug}/charts/{name}.svg")
def assignment_chart(slug: str, name: str, db: SessionDep, user: Instructor) -> Response:
    assignment = _assignment(db, slug)
    if name == "scores":
        rows = queries.student_rows(db, assignment)
        svg = charts.score_histogram([row.best_score for row in rows if row.best_score is not None],
                                     assignment.max_score, assignment.pass_mark)
    elif name == "checks":
        svg = charts.check_pass_rates(queries.check_pass_rates(db, assignment))
    elif name == "accuracy":
        rows = queries.student_rows(db, assignment)
        svg = charts.accuracy_distribution([row.accuracy for row in rows if row.accuracy is not None],
                                           queries.required_accuracy(assignment))
    elif name == "timeline":
        svg = charts.submissions_over_time(queries.submission_times(db, assignment), assignment.due_at)
    else:
        raise HTTPException(404, "no such chart")
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=30"})


@router.get("/dashboard/submissions/{submission_id}")
def submission_page(submission_id: int, request: Request, db: SessionDep, user: Instructor) -> HTMLResponse:
    submission = _submission(db, submission_id)
    run = _display_run(submission)
    source = submission.content.decode("utf-8", errors="replace")
    return render(request, "submission.html", {
        "user": user, "submission": submission, "assignment": submission.assignment,
        "current": queries.run_view(run) if run is not None else None,
        "history": [queries.run_view(r) for r in reversed(submission.runs)],
        "source_html": highlight(source, PythonLexer(), _formatter), "pygments_css": PYGMENTS_CSS})


def _display_run(submission: Submission) -> GradingRun | None:
    """A run still grading (so the page follows it live), else the run whose score counts."""
    pending = next((run for run in reversed(submission.runs) if run.applied and not run.finished), None)
    return pending or current_run(submission)


@router.get("/dashboard/submissions/{submission_id}/runs/{run_id}/curve.svg")
def training_curve(submission_id: int, run_id: int, db: SessionDep, user: Instructor) -> Response:
    run = db.get(GradingRun, run_id)
    if run is None or run.submission_id != submission_id:
        raise HTTPException(404, "no such run")
    return Response(charts.training_curve(queries.training_epochs(run.result)), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=5"})


# Live data for the pages' polling script


@router.get("/dashboard/live.json")
def live_queue(db: SessionDep, user: Instructor, course: str | None = None) -> JSONResponse:
    state = queries.queue_state(db, _course(db, course) if course else None)
    return JSONResponse({
        "depth": state.depth, "queued": state.queued,
        "running": [{"id": run.id, "submission_id": run.submission_id, "student": run.submission.user.email,
                     "assignment": run.submission.assignment.slug, "stage": run.stage,
                     "started_at": _when(run.started_at)} for run in state.running]},
        headers={"Cache-Control": "no-store"})


@router.get("/dashboard/submissions/{submission_id}/live.json")
def live_submission(submission_id: int, db: SessionDep, user: Instructor) -> JSONResponse:
    run = _display_run(_submission(db, submission_id))
    if run is None:
        return JSONResponse({"status": "none", "finished": False, "score_text": "", "progress_text": ""})
    event = actions.last_progress(db, run) if not run.finished else None
    return JSONResponse({
        "status": run.status, "finished": run.finished,
        "score_text": f"{_number(run.score)}/{_number(run.max_score)}" if run.finished else "",
        "progress_text": actions.describe_progress(run, event)}, headers={"Cache-Control": "no-store"})


@router.get("/dashboard/assignments/{slug}/live.json")
def live_assignment(slug: str, db: SessionDep, user: Instructor) -> JSONResponse:
    rows = queries.student_rows(db, _assignment(db, slug))
    return JSONResponse({"rows": {str(row.user.id): {
        "status": row.status, "latest": row.latest_score, "latest_text": _number(row.latest_score)}
        for row in rows}}, headers={"Cache-Control": "no-store"})


# Actions (every one a POST with the CSRF token)


@router.post("/dashboard/courses/{slug}/assignments", dependencies=[CsrfChecked])
def create_assignment(slug: str, db: SessionDep, user: Instructor,
                      assignment_slug: Annotated[str, Form(alias="slug")], title: Annotated[str, Form()],
                      due_at: Annotated[str, Form()] = "", pass_mark: Annotated[str, Form()] = "",
                      with_training: Annotated[bool, Form()] = False) -> Response:
    course = _course(db, slug)
    try:
        assignment = actions.create_assignment(db, course, user, slug=assignment_slug, title=title, due_at=due_at,
                                               pass_mark=pass_mark, with_training=with_training)
    except actions.ActionError as error:
        return _redirect(f"/dashboard/courses/{course.slug}", f"Not created: {error}")
    return _redirect(f"/dashboard/assignments/{assignment.slug}", f"Assignment {assignment.slug} created.")


@router.post("/dashboard/courses/{slug}/roster", dependencies=[CsrfChecked])
async def upload_roster(slug: str, request: Request, db: SessionDep, user: Instructor, file: UploadFile) -> Response:
    course = _course(db, slug)
    try:
        summary, tokens = await actions.import_roster(db, course, user, file)
    except actions.ActionError as error:
        return _redirect(f"/dashboard/courses/{course.slug}", f"Roster not imported: {error}")
    return render(request, "roster_result.html", {"user": user, "course": course, "summary": summary,
                                                  "tokens": tokens})


@router.post("/dashboard/submissions/{submission_id}/regrade", dependencies=[CsrfChecked])
def regrade_submission(submission_id: int, db: SessionDep, user: Instructor, background: BackgroundTasks) -> Response:
    submission = _submission(db, submission_id)
    run = actions.regrade_submission(db, submission, user, background)
    return _redirect(f"/dashboard/submissions/{submission.id}", f"Regrade queued (run {run.id}).")


@router.post("/dashboard/assignments/{slug}/regrade", dependencies=[CsrfChecked])
def regrade_all(slug: str, db: SessionDep, user: Instructor, background: BackgroundTasks) -> Response:
    assignment = _assignment(db, slug)
    batch_id = actions.start_regrade_all(db, assignment, user, background)
    return _redirect(f"/dashboard/assignments/{assignment.slug}/regrade/{batch_id}")


def _preview(db, assignment: Assignment, batch_id: str, user: User) -> actions.PreviewView:
    try:
        return actions.regrade_preview(db, assignment, batch_id, user)
    except actions.ActionError:
        raise HTTPException(404, "no such regrade") from None


@router.get("/dashboard/assignments/{slug}/regrade/{batch_id}")
def regrade_preview_page(slug: str, batch_id: str, request: Request, db: SessionDep, user: Instructor) -> Response:
    assignment = _assignment(db, slug)
    base = f"/dashboard/assignments/{assignment.slug}/regrade/{quote(batch_id)}"
    return render(request, "regrade_preview.html", {
        "user": user, "assignment": assignment, "preview": _preview(db, assignment, batch_id, user),
        "live_url": f"{base}/live.json", "confirm_url": f"{base}/confirm"})


@router.get("/dashboard/assignments/{slug}/regrade/{batch_id}/live.json")
def regrade_preview_live(slug: str, batch_id: str, db: SessionDep, user: Instructor) -> JSONResponse:
    preview = _preview(db, _assignment(db, slug), batch_id, user)
    return JSONResponse({"done": preview.done}, headers={"Cache-Control": "no-store"})


@router.post("/dashboard/assignments/{slug}/regrade/{batch_id}/confirm", dependencies=[CsrfChecked])
def regrade_confirm(slug: str, batch_id: str, db: SessionDep, user: Instructor) -> Response:
    assignment = _assignment(db, slug)
    try:
        changed = actions.confirm_regrade(db, assignment, batch_id, user)
    except actions.ActionError as error:
        return _redirect(f"/dashboard/assignments/{assignment.slug}/regrade/{quote(batch_id)}", str(error))
    return _redirect(f"/dashboard/assignments/{assignment.slug}", f"Regrade applied: {changed} score(s) changed.")


@router.get("/dashboard/assignments/{slug}/grades.csv")
def grades_csv(slug: str, db: SessionDep, user: Instructor, policy: str = "best") -> Response:
    assignment = _assignment(db, slug)
    if policy not in ("best", "latest"):
        raise HTTPException(422, "policy must be best or latest")
    body = actions.grades_csv(db, assignment, user, policy)
    filename = f"{assignment.slug}-grades-{policy}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


@router.post("/dashboard/assignments/{slug}/badges/{user_id}/rotate", dependencies=[CsrfChecked])
def rotate_badge(slug: str, user_id: int, db: SessionDep, user: Instructor) -> Response:
    assignment = _assignment(db, slug)
    student = db.get(User, user_id)
    enrolled = student is not None and db.scalar(select(Enrollment.id).where(
        Enrollment.course_id == assignment.course_id, Enrollment.user_id == student.id)) is not None
    if not enrolled:
        raise HTTPException(404, "no such student in this course")
    credentials.rotate_badge_token(db, student, assignment)
    return _redirect(f"/dashboard/assignments/{assignment.slug}", f"New badge URL for {student.email}.")


# Students: their badge links, after proving who they are with their API token


@router.get("/student")
def student_page(request: Request) -> HTMLResponse:
    return render(request, "student.html", {"badges": []})


@router.post("/student", dependencies=[CsrfChecked])
def student_badges(request: Request, db: SessionDep, token: Annotated[str, Form()]) -> HTMLResponse:
    student = credentials.user_for_token(db, token.strip())
    if student is None:
        return render(request, "student.html", {"badges": [], "error": "That token is not valid."}, status_code=401)
    assignments = db.scalars(select(Assignment).join(Enrollment, Enrollment.course_id == Assignment.course_id)
                             .where(Enrollment.user_id == student.id).order_by(Assignment.id)).all()
    base = public_base_url(request)
    badges = [badge_links(base, credentials.badge_token_for(db, student, assignment)) for assignment in assignments]
    return render(request, "student.html", {"badges": badges})


# Static files and the stand-alone submit client


@router.get("/static/dashboard/{name}")
def static_file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=300"})


@router.get("/client/grader_submit.py")
def client_script() -> FileResponse:
    """`grader submit` as one file (needs only httpx), for CI jobs that do not install the course package."""
    return FileResponse(CLIENT_SCRIPT, media_type="text/x-python; charset=utf-8", filename="grader_submit.py")

