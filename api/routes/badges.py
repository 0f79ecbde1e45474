"""CI badges: the public SVG and shields.io endpoint JSON by badge token, the student's badge links, rotation.

A badge token identifies one student's standing in one assignment and nothing else: the public routes answer
only with the badge, and an unknown token is a bare 404. Only runs whose server signature verifies count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.web.badge import (CACHE_SECONDS, Badge, empty_badge, pending_badge, render_endpoint_json, render_svg,
                           score_badge)
from grader.settings import get_settings
from grader.store import credentials
from grader.store.db import get_sessionmaker
from grader.store.models import Assignment, BadgeToken, Enrollment, GradingRun, Submission, User
from grader.store.signing import verify_run

router = APIRouter()


def _session() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(_session)]


def _bearer_user(db: SessionDep, authorization: Annotated[str | None, Header()] = None) -> User:
    scheme, _, token = (authorization or "").partition(" ")
    user = credentials.user_for_token(db, token.strip()) if scheme.lower() == "bearer" and token.strip() else None
    if user is None:
        raise HTTPException(401, "missing or invalid API token", headers={"WWW-Authenticate": "Bearer"})
    return user


BearerUser = Annotated[User, Depends(_bearer_user)]


class BadgeLinks(BaseModel):
    """Where a student's badge lives and what to paste into a README."""

    assignment: str
    badge_url: str
    json_url: str
    shields_url: str  # the same badge rendered by shields.io from the JSON form
    markdown: str


def applied_run(submission: Submission) -> GradingRun | None:
    """The run that stands for a submission: the newest one not left as an unconfirmed regrade preview."""
    runs = [run for run in submission.runs if run.applied and run.kind != "preview"]
    return runs[-1] if runs else None


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
        run = applied_run(submission)
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
        raise HTTPException(404, "not found")
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


def public_base_url(request: Request) -> str:
    """The configured public URL, else the one the request came in on."""
    configured = get_settings().api_base_url
    return configured if configured and "127.0.0.1" not in configured and "localhost" not in configured \
        else str(request.base_url)


def _assignment(db: Session, slug: str) -> Assignment:
    assignment = db.scalar(select(Assignment).where(Assignment.slug == slug))
    if assignment is None:
        raise HTTPException(404, f"no assignment {slug!r}")
    return assignment


def _enrolled(db: Session, user: User, assignment: Assignment) -> bool:
    return db.scalar(select(Enrollment.id).where(Enrollment.course_id == assignment.course_id,
                                                 Enrollment.user_id == user.id)) is not None


@router.get("/api/v1/assignments/{slug}/badge", tags=["badges"])
def my_badge(slug: str, request: Request, db: SessionDep, user: BearerUser) -> BadgeLinks:
    """The caller's badge URL and the Markdown to paste into a README."""
    assignment = _assignment(db, slug)
    if not _enrolled(db, user, assignment):
        raise HTTPException(404, f"no assignment {slug!r}")
    return badge_links(public_base_url(request), credentials.badge_token_for(db, user, assignment))


@router.post("/api/v1/assignments/{slug}/badges/{user_id}/rotate", tags=["badges"])
def rotate_badge(slug: str, user_id: int, request: Request, db: SessionDep, user: BearerUser) -> BadgeLinks:
    """Instructors: give a student's badge a new token; the old URL stops working at once."""
    if not user.is_instructor:
        raise HTTPException(403, "only instructors can rotate badge tokens")
    assignment = _assignment(db, slug)
    student = db.get(User, user_id)
    if student is None or not _enrolled(db, student, assignment):
        raise HTTPException(404, "no such student in this course")
    return badge_links(public_base_url(request), credentials.rotate_badge_token(db, student, assignment))
