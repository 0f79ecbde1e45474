"""CI badges: the public SVG and shields.io endpoint JSON by badge token, and their rotation by instructors.

Students find their badge links on `GET /api/v1/me/badges` and the dashboard's /student page.
A badge token identifies one student's standing in one assignment and nothing else: the public routes answer
only with the badge, and an unknown token is a bare 404. Only runs whose server signature verifies count.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.access import assignment_for, is_enrolled
from api.deps import CurrentInstructor, SessionDep
from api.routes.me import public_base_url
from api.web.badge import (CACHE_SECONDS, Badge, empty_badge, pending_badge, render_endpoint_json, render_svg,
                           score_badge)
from grader.store import credentials
from grader.store.models import BadgeToken, Submission, User
from grader.store.runs import current_run
from grader.store.signing import verify_run

router = APIRouter()


class BadgeLinks(BaseModel):
    """Where a student's badge lives and what to paste into a README."""

    assignment: str
    badge_url: str
    json_url: str
    shields_url: str  # the same badge rendered by shields.io from the JSON form
    markdown: str


def badge_for(db: Session, badge_token: BadgeToken, *, show: str = "score") -> Badge:
    """Latest submission still grading -> `grading...`; else the latest signed finished run's score."""
    assignment = badge_token.assignment
    label = assignment.slug
    submissions = db.scalars(
        select(Submission)
        .where(Submission.assignment_id == assignment.id, Submission.user_id == badge_token.user_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())
    ).all()
    for index, submission in enumerate(submissions):
        run = current_run(submission)  # the run whose score counts (a regrade preview never does)
        if run is None:
            continue
        if not run.finished:
            if index == 0:
                return pending_badge(label)
            continue
        if verify_run(run):
            score = float(run.score or 0.0)
            max_score = float(run.max_score or assignment.max_score)
            return score_badge(label, score, max_score, assignment.pass_mark, show=show)
    return empty_badge(label)


def _token_row(db: Session, token: str) -> BadgeToken:
    row = db.scalar(select(BadgeToken).where(BadgeToken.token == token)) if 0 < len(token) <= 64 else None
    if row is None:
        raise HTTPException(404, "Not found.")
    return row


_BADGE_HEADERS = {
    "Cache-Control": f"max-age={CACHE_SECONDS}, s-maxage={CACHE_SECONDS}, must-revalidate",
    "X-Content-Type-Options": "nosniff",
    # An SVG opened directly must not run anything, whatever ends up in a label.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}

ShowQuery = Annotated[str, Query(pattern="^(score|status)$", description="`score` (87/100) or `status` (passing)")]


@router.get("/badges/{badge_token}.svg", tags=["badges"], response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def badge_svg(badge_token: str, db: SessionDep, show: ShowQuery = "score") -> Response:
    badge = badge_for(db, _token_row(db, badge_token), show=show)
    return Response(render_svg(badge), media_type="image/svg+xml; charset=utf-8", headers=_BADGE_HEADERS)


@router.get("/badges/{badge_token}.json", tags=["badges"])
def badge_json(badge_token: str, db: SessionDep, show: ShowQuery = "score") -> JSONResponse:
    badge = badge_for(db, _token_row(db, badge_token), show=show)
    return JSONResponse(render_endpoint_json(badge), headers=_BADGE_HEADERS)


def badge_links(base_url: str, badge_token: BadgeToken) -> BadgeLinks:
    base = base_url.rstrip("/")
    svg = f"{base}/badges/{badge_token.token}.svg"
    json_url = f"{base}/badges/{badge_token.token}.json"
    return BadgeLinks(
        assignment=badge_token.assignment.slug, badge_url=svg, json_url=json_url,
        shields_url=f"https://img.shields.io/endpoint?url={quote(json_url, safe='')}",
        markdown=f"![{badge_token.assignment.slug}]({svg})",
    )


@router.post("/api/v1/assignments/{slug}/badges/{user_id}/rotate", tags=["badges"])
def rotate_badge(slug: str, user_id: int, request: Request, db: SessionDep,
                 instructor: CurrentInstructor) -> BadgeLinks:
    """Instructors: give a student's badge a new token; the old URL stops working at once."""
    assignment = assignment_for(db, slug, instructor)
    student = db.get(User, user_id)
    if student is None or not is_enrolled(db, student, assignment.course_id):
        raise HTTPException(404, "No such student in this course.")
    return badge_links(public_base_url(request), credentials.rotate_badge_token(db, student, assignment))
