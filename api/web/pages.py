"""Dashboard pages (course, assignment, submission), their charts, and the JSON their live script polls."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from sqlalchemy import func, select

from api.deps import SessionDep
from api.web import actions, charts, queries
from api.web.auth import Instructor
from api.web.queries import assignment_or_404, course_or_404, submission_or_404
from api.web.rendering import number, redirect, render, when
from grader.store.models import Course, GradingRun, Submission
from grader.store.runs import current_run

CHART_NAMES = (("scores", "Histogram of best scores"), ("checks", "Pass rate per check"),
               ("accuracy", "CIFAR-10 accuracy distribution"), ("timeline", "Submissions over time"))

router = APIRouter(include_in_schema=False)
_formatter = HtmlFormatter(linenos="table", cssclass="highlight")
PYGMENTS_CSS = _formatter.get_style_defs(".highlight")


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=303)


@router.get("/dashboard")
def courses_page(request: Request, db: SessionDep, user: Instructor) -> Response:
    courses = db.scalars(select(Course).order_by(Course.id)).all()
    if len(courses) == 1 and not request.query_params.get("notice"):
        return redirect(f"/dashboard/courses/{courses[0].slug}")
    return render(request, "courses.html", {"user": user, "courses": courses})


@router.get("/dashboard/courses/{slug}")
def course_page(slug: str, request: Request, db: SessionDep, user: Instructor) -> HTMLResponse:
    course = course_or_404(db, slug)
    return render(request, "course.html", {
        "user": user, "course": course, "counts": queries.submission_counts(db, course),
        "students": queries.student_count(db, course), "queue": queries.queue_state(db, course)})


@router.get("/dashboard/assignments/{slug}")
def assignment_page(slug: str, request: Request, db: SessionDep, user: Instructor) -> HTMLResponse:
    assignment = assignment_or_404(db, slug)
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
    assignment = assignment_or_404(db, slug)
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
        raise HTTPException(404, "no such chart")
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=30"})


@router.get("/dashboard/submissions/{submission_id}")
def submission_page(submission_id: int, request: Request, db: SessionDep, user: Instructor) -> HTMLResponse:
    submission = submission_or_404(db, submission_id)
    run = _display_run(submission)
    source = submission.content.decode("utf-8", errors="replace")
    return render(request, "submission.html", {
        "user": user, "submission": submission, "assignment": submission.assignment,
        "current": queries.run_view(run) if run is not None else None,
        "history": [queries.run_view(r) for r in reversed(submission.runs)],
        "source_html": highlight(source, PythonLexer(), _formatter), "pygments_css": PYGMENTS_CSS})


@router.get("/dashboard/submissions/{submission_id}/file")
def submission_file(submission_id: int, db: SessionDep, user: Instructor) -> Response:
    """The uploaded file as an attachment (never rendered by the browser)."""
    submission = submission_or_404(db, submission_id)
    filename = f"submission-{submission.id}-{submission.filename}".replace('"', "")
    return Response(submission.content, media_type="text/x-python; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"',
                             "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


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


@router.get("/dashboard/live.json")
def live_queue(db: SessionDep, user: Instructor, course: str | None = None) -> JSONResponse:
    state = queries.queue_state(db, course_or_404(db, course) if course else None)
    return JSONResponse({
        "depth": state.depth, "queued": state.queued,
        "running": [{"id": run.id, "submission_id": run.submission_id, "student": run.submission.user.email,
                     "assignment": run.submission.assignment.slug, "stage": run.stage,
                     "started_at": when(run.started_at)} for run in state.running]},
        headers={"Cache-Control": "no-store"})


@router.get("/dashboard/submissions/{submission_id}/live.json")
def live_submission(submission_id: int, db: SessionDep, user: Instructor) -> JSONResponse:
    run = _display_run(submission_or_404(db, submission_id))
    if run is None:
        return JSONResponse({"status": "none", "finished": False, "score_text": "", "progress_text": ""})
    event = actions.last_progress(db, run) if not run.finished else None
    return JSONResponse({
        "status": run.status, "finished": run.finished,
        "score_text": f"{number(run.score)}/{number(run.max_score)}" if run.finished else "",
        "progress_text": actions.describe_progress(run, event)}, headers={"Cache-Control": "no-store"})


@router.get("/dashboard/assignments/{slug}/live.json")
def live_assignment(slug: str, db: SessionDep, user: Instructor) -> JSONResponse:
    rows = queries.student_rows(db, assignment_or_404(db, slug), with_accuracy=False)
    return JSONResponse({"rows": {str(row.user.id): {
        "status": row.status, "latest": row.latest_score, "latest_text": number(row.latest_score)}
        for row in rows}}, headers={"Cache-Control": "no-store"})
