"""Staff login and logout, and the dependencies every dashboard page uses: the staff member, the CSRF check."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import SessionDep
from api.web.rendering import redirect, render
from api.login_guard import client_address, login_throttle, wait_message
from api.web.security import clear_session, load_session, new_session, require_csrf, store_session
from grader.services import access
from grader.store import credentials
from grader.store.models import User

router = APIRouter(include_in_schema=False)


def _login_redirect(request: Request) -> HTTPException:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(303, "log in first", headers={"Location": f"/login?next={quote(target, safe='')}"})


def current_staff(request: Request, db: SessionDep) -> User:
    """The logged-in user, when they may use the dashboard (grader/services/policy.py); anyone else is sent to the
    login page. Which courses they see is decided per page."""
    session = load_session(request)
    user = db.get(User, session.user_id) if session.user_id is not None else None
    if user is None or user.session_version != session.version or not access.may_use_dashboard(db, user):
        raise _login_redirect(request)
    return user


Staff = Annotated[User, Depends(current_staff)]


def current_student(request: Request, db: SessionDep) -> User:
    """Whoever signed in on the student page (any account); others are sent to its sign-in form."""
    session = load_session(request)
    user = db.get(User, session.user_id) if session.user_id is not None else None
    if user is None or user.session_version != session.version:
        target = request.url.path
        raise HTTPException(303, "sign in first", headers={"Location": f"/student/login?next={quote(target, safe='')}"})
    return user


Student = Annotated[User, Depends(current_student)]
CsrfChecked = Depends(require_csrf)


def _safe_next(url: str | None) -> str:
    """Only same-site paths are followed after login (no open redirect)."""
    if not url or not url.startswith("/") or url.startswith("//") or urlsplit(url).netloc:
        return "/dashboard"
    return url


@router.get("/login")
def login_page(request: Request, next: str = "/dashboard") -> HTMLResponse:
    return render(request, "login.html", {"next_url": _safe_next(next)})


@router.post("/login", dependencies=[CsrfChecked])
def login(request: Request, db: SessionDep, email: Annotated[str, Form()], password: Annotated[str, Form()],
          next: Annotated[str, Form()] = "/dashboard") -> Response:
    email = email.strip().lower()
    throttle = login_throttle(request)
    attempt = throttle.attempt(email, client_address(request))
    if attempt.refused:
        page = render(request, "login.html", {"next_url": _safe_next(next), "email": email,
                                              "error": wait_message(attempt.retry_after_seconds)}, status_code=429)
        page.headers["Retry-After"] = str(attempt.retry_after_seconds)
        return page
    user = credentials.authenticate_staff(db, email, password)
    if user is None or not access.may_use_dashboard(db, user):
        return render(request, "login.html", {"next_url": _safe_next(next), "email": email,
                                              "error": "Wrong email or password."}, status_code=401)
    throttle.succeeded(attempt)
    response = redirect(_safe_next(next))
    session = new_session(user.id, user.session_version)  # a fresh CSRF token: a session planted before login is useless after it
    request.state.web_session = session
    store_session(request, response, session)
    return response


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    response = redirect("/login", "You are logged out.")
    clear_session(request, response)
    return response
