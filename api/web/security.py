"""Dashboard sessions and CSRF: a signed, HttpOnly, SameSite=Lax cookie carrying the user id and a CSRF token.

The cookie is signed (itsdangerous, with the server's secret key) and time-limited; it holds no secret other
than the CSRF token, which every state-changing form echoes in a hidden field. Logging in issues a fresh
session (new CSRF token), so a session planted before login is worthless afterwards.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from grader.settings import get_settings

COOKIE_NAME = "grader_session"
SESSION_MAX_AGE_SECONDS = 8 * 3600  # one working day; then log in again
CSRF_FIELD = "csrf_token"


@dataclass
class WebSession:
    """What the session cookie carries; `fresh` means the response must set the cookie."""

    user_id: int | None
    csrf_token: str
    fresh: bool = False
    version: int = 0  # the user's session_version at login; a raised version ends the session


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret_key, salt="grader.dashboard.session")


def new_session(user_id: int | None = None, version: int = 0) -> WebSession:
    return WebSession(user_id=user_id, csrf_token=secrets.token_urlsafe(32), fresh=True, version=version)


def load_session(request: Request) -> WebSession:
    """The request's session, or a fresh anonymous one when the cookie is missing, tampered with or expired."""
    cached = getattr(request.state, "web_session", None)
    if cached is not None:
        return cached
    session = new_session()
    raw = request.cookies.get(COOKIE_NAME)
    if raw:
        try:
            data = _serializer().loads(raw, max_age=SESSION_MAX_AGE_SECONDS)
            if isinstance(data, dict) and isinstance(data.get("c"), str):
                user_id, version = data.get("u"), data.get("v")
                if isinstance(user_id, int) and isinstance(version, int):
                    session = WebSession(user_id=user_id, csrf_token=data["c"], version=version)
                else:
                    session = WebSession(user_id=None, csrf_token=data["c"])
        except BadSignature:
            pass
    request.state.web_session = session
    return session


def is_https(request: Request) -> bool:
    # Behind a TLS-terminating proxy the scheme arrives in X-Forwarded-Proto.
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


def store_session(request: Request, response: Response, session: WebSession) -> None:
    """Set the cookie when the session is new (or forced), with HttpOnly, SameSite=Lax and Secure on https."""
    if not session.fresh:
        return
    value = _serializer().dumps({"u": session.user_id, "c": session.csrf_token, "v": session.version})
    response.set_cookie(COOKIE_NAME, value, max_age=SESSION_MAX_AGE_SECONDS, path="/", httponly=True,
                        samesite="lax", secure=is_https(request))


def clear_session(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax", secure=is_https(request))


async def require_csrf(request: Request) -> None:
    """Refuse a state-changing request whose form does not carry the session's CSRF token (403)."""
    session = load_session(request)
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if session.fresh or not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf_token):
        raise HTTPException(403, "the form expired or did not come from this site; reload the page and try again")
