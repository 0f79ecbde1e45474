"""Request bodies are capped before anything parses them: a little over the file limit for uploads, 1 MiB
(REQUEST_MAX_BYTES) elsewhere. A declared Content-Length over the cap is refused before a byte is read; a body
without one (chunked) is counted as it arrives and refused as soon as it passes the cap.

The refusal is a 413 in JSON for API clients (paths under /api/, or an Accept header that asks for JSON and not
HTML) and a page in the dashboard's style, with the limit and a link back to the form, for a person using a form."""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import HTTPException
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grader.kits import MAX_UPLOAD_BYTES as KIT_MAX_UPLOAD_BYTES
from grader.services.courses import ROSTER_MAX_BYTES
from grader.services.similarity_reports import STARTER_MAX_BYTES
from grader.settings import get_settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # form fields and part headers around an uploaded file


def _submission_bytes() -> int:
    return get_settings().submission_max_bytes


# Routes that take a file, with the largest file they accept; every other request gets REQUEST_MAX_BYTES.
UPLOADS: tuple[tuple[re.Pattern[str], str, Callable[[], int]], ...] = (
    (re.compile(r"^/api/v1/assignments/[^/]+/(submissions|self-test)/?$"), "A submitted file", _submission_bytes),
    (re.compile(r"^/student/assignments/[^/]+/submit/?$"), "A submitted file", _submission_bytes),
    (re.compile(r"^(/api/v1|/dashboard)/courses/[^/]+/roster/?$"), "A roster file", lambda: ROSTER_MAX_BYTES),
    (re.compile(r"^(/api/v1|/dashboard)/courses/[^/]+/kits/?$"), "A kit archive", lambda: KIT_MAX_UPLOAD_BYTES),
    (re.compile(r"^/dashboard/assignments/[^/]+/similarity/?$"), "A starter file", lambda: STARTER_MAX_BYTES),
)


def body_limit(path: str) -> tuple[int, str]:
    """(cap in bytes, what the caller should know about it) for a request to `path`."""
    for pattern, what, file_limit in UPLOADS:
        if pattern.match(path):
            return file_limit() + MULTIPART_OVERHEAD_BYTES, f"{what} may be at most {_size(file_limit())}."
    limit = get_settings().request_max_bytes
    return limit, f"Request bodies may be at most {_size(limit)}."


def _size(count: int) -> str:
    return f"{count / 1048576:g} MiB" if count >= 1048576 else f"{count / 1024:g} KiB"


def _message(reason: str) -> str:
    return f"The request is too large. {reason}"


class BodyTooLarge(HTTPException):
    """A body that passed its cap while being read; api/errors.py answers it with `too_large_response`."""

    def __init__(self, reason: str) -> None:
        super().__init__(413, _message(reason), headers={"Connection": "close"})
        self.reason = reason


def wants_page(path: str, accept: str) -> bool:
    """True for a person's browser (a page answers), False for an API client (JSON answers)."""
    if path.startswith("/api/"):
        return False
    return "text/html" in accept or "application/json" not in accept


_SAFE_PATH = re.compile(r"^/[A-Za-z0-9_.\-/]*$")


def _back_link(path: str) -> str:
    """The page that holds the form: the path one level up (`/student/assignments/x/submit` -> its assignment)."""
    parent = path.rstrip("/").rsplit("/", 1)[0]
    return parent if parent and _SAFE_PATH.match(parent) and not parent.startswith("//") else "/dashboard"


def too_large_response(path: str, accept: str, reason: str) -> Response:
    """The 413 for a request to `path`: a page for a person, JSON for an API client."""
    headers = {"Connection": "close"}
    if not wants_page(path, accept):
        return JSONResponse({"detail": _message(reason)}, status_code=413, headers=headers)
    from api.web.rendering import SECURITY_HEADERS, templates  # api.web imports this module's neighbours

    page = templates.get_template("too_large.html").render(reason=f"The file is too big. {reason}",
                                                             back=_back_link(path))
    return HTMLResponse(page, status_code=413, headers={**headers, **SECURITY_HEADERS})


class BodySizeLimit:
    """Pure ASGI middleware (a BaseHTTPMiddleware would buffer the body it is meant to cap)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, reason = body_limit(scope["path"])
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = too_large_response(scope["path"], headers.get(b"accept", b"").decode("latin-1"), reason)
            await response(scope, receive, send)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the parser's read: api/errors.py answers it (a page or JSON).
                    raise BodyTooLarge(reason)
            return message

        await self.app(scope, counted_receive, send)
