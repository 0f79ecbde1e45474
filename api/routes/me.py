"""The caller's own things: badge links for every assignment of their courses."""

from __future__ import annotations

from fastapi import APIRouter, Request

from api.deps import CurrentUser, SessionDep
from api.links import badge_links, public_base_url
from api.schemas import BadgeLinkPublic
from grader.services import badges

router = APIRouter(prefix="/api/v1/me", tags=["me"])


@router.get("/badges")
def my_badges(request: Request, db: SessionDep, user: CurrentUser) -> list[BadgeLinkPublic]:
    """Badge URLs (SVG and shields.io JSON) and the Markdown to paste into a README, per assignment."""
    base = public_base_url(request)
    return [badge_links(base, token) for token in badges.badge_tokens_of(db, user)]
