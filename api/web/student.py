"""Pages for students and CI: badge links after proving who one is with the API token, static files, the
stand-alone `grader submit` client."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import SessionDep
from api.links import badge_links, public_base_url
from api.web.auth import CsrfChecked
from api.web.rendering import WEB_DIR, render
from grader.services import badges
from grader.store import credentials

STATIC_DIR = WEB_DIR / "static"
CLIENT_SCRIPT = WEB_DIR.parent.parent / "grader" / "commands" / "submit.py"

router = APIRouter(include_in_schema=False)


@router.get("/student")
def student_page(request: Request) -> HTMLResponse:
    return render(request, "student.html", {"badges": []})


@router.post("/student", dependencies=[CsrfChecked])
def student_badges(request: Request, db: SessionDep, token: Annotated[str, Form()]) -> HTMLResponse:
    student = credentials.user_for_token(db, token.strip())
    if student is None:
        return render(request, "student.html", {"badges": [], "error": "That token is not valid."}, status_code=401)
    base = public_base_url(request)
    links = [badge_links(base, token) for token in badges.badge_tokens_of(db, student)]
    return render(request, "student.html", {"badges": links})


@router.get("/static/dashboard/{name}")
def static_file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, "not found")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=300"})


@router.get("/client/grader_submit.py")
def client_script() -> FileResponse:
    """`grader submit` as one file (needs only httpx), for CI jobs that do not install the course package."""
    return FileResponse(CLIENT_SCRIPT, media_type="text/x-python; charset=utf-8", filename="grader_submit.py")
