"""The caller's own things: badge links for every assignment of their courses."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep
from api.schemas import BadgeLinkPublic
from grader.settings import get_settings
from grader.store import credentials
from grader.store.models import Assignment, Enrollment

router = APIRouter(prefix="/api/v1/me", tags=["me"])


def public_base_url(request: Request) -> str:
    configured = get_settings().api_base_url
    if configured and "127.0.0.1" not in configured and "localhost" not in configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


@router.get("/badges")
def my_badges(request: Request, db: SessionDep, user: CurrentUser) -> list[BadgeLinkPublic]:
    """Badge URLs (SVG and shields.io JSON) and the Markdown to paste into a README, per assignment."""
    assignments = db.scalars(select(Assignment).join(Enrollment, Enrollment.course_id == Assignment.course_id)
                             .where(Enrollment.user_id == user.id).order_by(Assignment.id)).all()
    base = public_base_url(request)
    links = []
    for assignment in assignments:
        token = credentials.badge_token_for(db, user, assignment).token
        svg = f"{base}/badges/{token}.svg"
        links.append(BadgeLinkPublic(assignment=assignment.slug, badge_url=svg, json_url=f"{base}/badges/{token}.json",
                                     markdown=f"![{assignment.slug}]({svg})"))
    return links
