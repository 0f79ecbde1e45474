"""Rendering of dashboard pages: templates and their filters, security headers, redirects with a notice."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from api.web.security import load_session, store_session

WEB_DIR = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))

# Pages may load scripts, styles and images only from this server; no inline script, no framing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def when(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def number(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.2f}".rstrip("0").rstrip(".")


def signed_number(value: Any) -> str:
    return "–" if value is None else ("+" if float(value) > 0 else "") + number(value)


def percent(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def stage_weights(weights: dict[str, Any]) -> str:
    return ", ".join(f"{name} {number(points)}" for name, points in (weights or {}).items())


def web_link(url: Any) -> bool:
    """Whether a user-given URL may be a link: http(s) only (never `javascript:` or `data:`)."""
    if not isinstance(url, str):
        return False
    parts = urlsplit(url.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


templates.env.tests["web_link"] = web_link
templates.env.filters.update(when=when, number=number, signed_number=signed_number, percent=percent,
                             stage_weights=stage_weights)


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A page with the session's CSRF token in its forms; sets the session cookie when it is new."""
    session = load_session(request)
    context = {"user": None, "notice": request.query_params.get("notice"), "error": None, **context,
               "csrf_token": session.csrf_token}
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=SECURITY_HEADERS)
    response.headers["Cache-Control"] = "no-store"
    store_session(request, response, session)
    return response


def redirect(url: str, notice: str | None = None) -> RedirectResponse:
    if notice:
        url += ("&" if "?" in url else "?") + "notice=" + quote(notice)
    return RedirectResponse(url, status_code=303)
