"""CI badges: the public SVG and shields.io endpoint JSON by badge token, and their rotation by course staff.

Students find their badge links on `GET /api/v1/me/badges` and the dashboard's /student page. A badge token
identifies one student's standing in one assignment and nothing else: the public routes answer only with the
badge, and an unknown token is a bare 404. The score shown is the counted score (grader/services/scores.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from api.badge_images import (CACHE_SECONDS, Badge, empty_badge, pending_badge, render_endpoint_json, render_svg,
                              score_badge)
from api.deps import CurrentUser, RowId, SessionDep
from api.links import badge_links, public_base_url
from api.schemas import BadgeLinkPublic
from grader.services import access, badges
from grader.services.policy import Action

router = APIRouter()

_BADGE_HEADERS = {
    "Cache-Control": f"max-age={CACHE_SECONDS}, s-maxage={CACHE_SECONDS}, must-revalidate",
    "X-Content-Type-Options": "nosniff",
    # An SVG opened directly must not run anything, whatever ends up in a label.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}

ShowQuery = Annotated[str, Query(pattern="^(score|status)$", description="`score` (87/100) or `status` (passing)")]


def badge_for(db: Session, token: str, show: str) -> Badge:
    state = badges.badge_state(db, badges.token_row(db, token))
    if state.grading:
        return pending_badge(state.label)
    if state.counted is None:
        return empty_badge(state.label)
    counted = state.counted
    return score_badge(state.label, counted.score, counted.max_score, counted.passed, show=show)


@router.get("/badges/{badge_token}.svg", tags=["badges"], response_class=Response,
            responses={200: {"content": {"image/svg+xml": {}}}})
def badge_svg(badge_token: str, db: SessionDep, show: ShowQuery = "score") -> Response:
    return Response(render_svg(badge_for(db, badge_token, show)), media_type="image/svg+xml; charset=utf-8",
                    headers=_BADGE_HEADERS)


@router.get("/badges/{badge_token}.json", tags=["badges"])
def badge_json(badge_token: str, db: SessionDep, show: ShowQuery = "score") -> JSONResponse:
    return JSONResponse(render_endpoint_json(badge_for(db, badge_token, show)), headers=_BADGE_HEADERS)


@router.post("/api/v1/assignments/{slug}/badges/{user_id}/rotate", tags=["badges"])
def rotate_badge(slug: str, user_id: RowId, request: Request, db: SessionDep, user: CurrentUser) -> BadgeLinkPublic:
    """Course staff: give a student's badge a new token; the old URL stops working at once."""
    assignment = access.assignment_for(db, slug, user, Action.ROTATE_BADGE)
    student = access.enrolled_user(db, assignment.course, user_id)
    return badge_links(public_base_url(request), badges.rotate(db, student, assignment))
