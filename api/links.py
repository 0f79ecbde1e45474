"""Absolute links the API hands out: the public base URL and a student's badge links."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request

from api.schemas import BadgeLinkPublic
from grader.settings import get_settings
from grader.store.models import BadgeToken


def public_base_url(request: Request) -> str:
    """API_BASE_URL when it names a public host, else the host the request came to."""
    configured = get_settings().api_base_url
    if configured and "127.0.0.1" not in configured and "localhost" not in configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/")


def badge_links(base_url: str, badge_token: BadgeToken) -> BadgeLinkPublic:
    base = base_url.rstrip("/")
    svg = f"{base}/badges/{badge_token.token}.svg"
    json_url = f"{base}/badges/{badge_token.token}.json"
    return BadgeLinkPublic(
        assignment=badge_token.assignment.slug, badge_url=svg, json_url=json_url,
        shields_url=f"https://img.shields.io/endpoint?url={quote(json_url, safe='')}",
        markdown=f"![{badge_token.assignment.slug}]({svg})",
    )
