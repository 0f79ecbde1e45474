"""Dashboard pages (course, assignment, submission), their charts, and the JSON their live script polls."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from api.deps import RowId, SessionDep
from api.downloads import content_disposition
from api.web import actions, charts, queries
from api.web.auth import Staff
from api.web.rendering import number, redirect, render, when
from grader.services import access, courses
from grader.services import runs as run_service
from grader.services.errors import NotFound
from grader.services.policy import Action
from grader.services.scores import counted_score

SEE = Action.READ_SUBMISSION  # every page shows everyone's submissions: the course's staff only

CHART_NAMES = (("scores", "Histogram of best scores"), ("checks", "Pass rate per check"),
               ("accuracy", "CIFAR-10 accuracy distribution"), ("timeline", "Submissions over time"))

router = APIRouter(include_in_schema=False)
_formatter = HtmlFormatter(linenos="table", cssclass="highlight")
PYGMENTS_CSS = _formatter.get_style_defs(".highlight")


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/dashboard")
def courses_page(request: Request, db: SessionDep, user: Staff) -> Response:
    staffed = courses.courses_where(db, user, SEE)
    if len(staffed) == 1 and not request.query_params.get("notice"):
        return redirect(f"/dashboard/courses/{staffed[0].slug}")
    return render(request, "courses.html", {"user": user, "courses": staffed})


@router.get("/dashboard/courses/{slug}")
def course_page(slug: str, request: Request, db: SessionDep, user: Staff) -> HTMLResponse:
    course = access.course_for(db, slug, user, SEE)
    return render(request, "course.html", {
        "user": user, "course": course, "counts": queries.submission_counts(db, course),
        "students": queries.student_count(db, course), "queue": queries.queue_state(db, [course.id]),
        "may_edit_assignments": access.may(db, user, course, Action.EDIT_ASSIGNMENTS),
        "may_edit_roster": access.may(db, user, course, Action.EDIT_ROSTER)})


@router.get("/dashboard/assignments/{slug}")
def assignment_page(slug: str, request: Request, db: SessionDep, user: Staff) -> HTMLResponse:
    assignment = access.assignment_for(db, slug, user, SEE)
    rows = queries.student_rows(db, assignment)
    return render(request, "assignment.html", {
        "user": user, "assignment": assignment, "rows": rows, "charts": CHART_NAMES,
        "chart_version": queries.chart_version(db, assignment)})


@router.get("/dashboard/assignments/{slug}/charts/{name}.svg")
def assignment_chart(slug: str, name: str, db: SessionDep, user: Staff) -> Response:
    assignment = access.assignment_for(db, slug, user, SEE)
    if name == "scores":
        rows = queries.student_rows(db, assignment, with_accuracy=False)
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
        raise NotFound("no such chart")
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=30"})


@router.get("/dashboard/submissions/{submission_id}")
def submission_page(submission_id: RowId, request: Request, db: SessionDep, user: Staff) -> HTMLResponse:
    submission = access.submission_for(db, submission_id, user, SEE)
    run = run_service.status_run(submission)
    source = submission.content.decode("utf-8", errors="replace")
    return render(request, "submission.html", {
        "user": user, "submission": submission, "assignment": submission.assignment,
        "current": queries.run_view(run) if run is not None else None, "counted": counted_score(submission),
        "history": [queries.run_view(r) for r in reversed(submission.runs)],
        "source_html": highlight(source, PythonLexer(), _formatter), "pygments_css": PYGMENTS_CSS})


@router.get("/dashboard/submissions/{submission_id}/file")
def submission_file(submission_id: RowId, db: SessionDep, user: Staff) -> Response:
    """The uploaded file as an attachment (never rendered by the browser)."""
    submission = access.submission_for(db, submission_id, user, SEE)
    filename = f"submission-{submission.id}-{submission.filename}"
    return Response(submission.content, media_type="text/x-python; charset=utf-8",
                    headers={"Content-Disposition": content_disposition("attachment", filename),
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


@router.get("/dashboard/submissions/{submission_id}/runs/{run_id}/curve.svg")
def training_curve(submission_id: RowId, run_id: RowId, db: SessionDep, user: Staff) -> Response:
    submission = access.submission_for(db, submission_id, user, SEE)
    run = next((run for run in submission.runs if run.id == run_id), None)
    if run is None:
        raise NotFound("no such run")
    return Response(charts.training_curve(queries.training_epochs(run.result)), media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=5"})


@router.get("/dashboard/live.json")
def live_queue(db: SessionDep, user: Staff, course: str | None = None) -> JSONResponse:
    course_ids = [access.course_for(db, course, user, SEE).id] if course else access.course_ids_for(db, user, SEE)
    state = queries.queue_state(db, course_ids)
    return JSONResponse({
        "depth": state.depth, "queued": state.queued,
        "running": [{"id": run.id, "submission_id": run.submission_id, "student": run.submission.user.email,
                     "assignment": run.submission.assignment.slug, "stage": run.stage,
                     "started_at": when(run.started_at)} for run in state.running]},
        headers={"Cache-Control": "no-store"})


@router.get("/dashboard/submissions/{submission_id}/live.json")
def live_submission(submission_id: RowId, db: SessionDep, user: Staff) -> JSONResponse:
    run = run_service.status_run(access.submission_for(db, submission_id, user, SEE))
    if run is None:
        return JSONResponse({"status": "none", "finished": False, "score_text": "", "progress_text": ""})
    event = run_service.last_progress(db, run) if not run.finished else None
    return JSONResponse({
        "status": run.status, "finished": run.finished,
        "score_text": f"{number(run.score)}/{number(run.max_score)}" if run.finished else "",
        "progress_text": actions.describe_progress(run, event)}, headers={"Cache-Control": "no-store"})


@router.get("/dashboard/assignments/{slug}/live.json")
def live_assignment(slug: str, db: SessionDep, user: Staff) -> JSONResponse:
    rows = queries.student_rows(db, access.assignment_for(db, slug, user, SEE), with_accuracy=False)
    return JSONResponse({"rows": {str(row.user.id): {
        "status": row.status, "latest": row.latest_score, "latest_text": number(row.latest_score)}
        for row in rows}}, headers={"Cache-Control": "no-store"})
