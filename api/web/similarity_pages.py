"""The similarity report in the dashboard (the course's staff only, never students): request one, follow its
progress, the ranked table of pairs, and one pair side by side with the shared code highlighted."""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, BackgroundTasks, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup

from api.deps import RowId, SessionDep
from api.web.auth import CsrfChecked, Staff
from api.web.rendering import redirect, render
from grader.services import access, similarity_reports
from grader.services.errors import NotFound, ServiceError
from grader.services.policy import Action

SEE = Action.READ_SUBMISSION  # staff of the course
RUN = Action.REGRADE  # starting a background job over everyone's files: the same staff who may regrade

router = APIRouter(include_in_schema=False)


def highlighted(source: str, spans: list[list[int]]) -> Markup:
    """The source, escaped, with the shared spans in <mark> (overlapping spans merged)."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    parts, position = [], 0
    for start, end in merged:
        parts.append(escape(source[position:start]))
        parts.append(f"<mark>{escape(source[start:end])}</mark>")
        position = end
    parts.append(escape(source[position:]))
    return Markup("".join(parts))


@router.get("/dashboard/assignments/{slug}/similarity")
def report_page(slug: str, request: Request, db: SessionDep, user: Staff) -> HTMLResponse:
    assignment = access.assignment_for(db, slug, user, SEE)
    report = similarity_reports.latest_report(db, assignment)
    return render(request, "similarity.html", {
        "user": user, "assignment": assignment, "report": report,
        "pairs": similarity_reports.pair_views(db, report) if report and report.status == "done" else []})


@router.post("/dashboard/assignments/{slug}/similarity", dependencies=[CsrfChecked])
async def request_report(slug: str, db: SessionDep, user: Staff, background: BackgroundTasks,
                         starter: UploadFile | None = None) -> Response:
    from grader.similarity_task import publish

    assignment = access.assignment_for(db, slug, user, RUN)
    page = f"/dashboard/assignments/{assignment.slug}/similarity"
    content = await starter.read(similarity_reports.STARTER_MAX_BYTES + 1) if starter is not None else b""
    try:
        report = similarity_reports.request_report(db, assignment, user, starter=content)
    except ServiceError as error:
        return redirect(page, f"Not started: {error}")
    background.add_task(publish, report.id)  # after the response: the request's session has committed the row
    return redirect(page, "Similarity report queued on the training queue; this page follows its progress.")


@router.get("/dashboard/assignments/{slug}/similarity/live.json")
def report_live(slug: str, db: SessionDep, user: Staff) -> JSONResponse:
    report = similarity_reports.latest_report(db, access.assignment_for(db, slug, user, SEE))
    if report is None:
        return JSONResponse({"status": "none", "done": True}, headers={"Cache-Control": "no-store"})
    return JSONResponse({"status": report.status, "done": report.status in ("done", "failed"),
                         "done_pairs": report.done_pairs, "total_pairs": report.total_pairs},
                        headers={"Cache-Control": "no-store"})


@router.get("/dashboard/assignments/{slug}/similarity/{report_id}/pairs/{rank}")
def pair_page(slug: str, report_id: RowId, rank: RowId, request: Request, db: SessionDep, user: Staff) -> HTMLResponse:
    assignment = access.assignment_for(db, slug, user, SEE)
    report = similarity_reports.report_of(db, assignment, report_id)
    pair = next((view for view in similarity_reports.pair_views(db, report) if view.rank == rank), None)
    if pair is None:
        raise NotFound("no such pair")
    decode = lambda submission: submission.content.decode("utf-8", errors="replace")  # noqa: E731
    return render(request, "similarity_pair.html", {
        "user": user, "assignment": assignment, "report": report, "pair": pair,
        "first_html": highlighted(decode(pair.first), pair.first_spans),
        "second_html": highlighted(decode(pair.second), pair.second_spans)})
