"""The leaderboard (opt-in per assignment): the course's page of pseudonyms, best signed CIFAR-10 accuracy and
training-step time, updated live; a student chooses their name there; instructors switch it on or off."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.deps import SessionDep
from api.web.auth import CsrfChecked, Staff, Student
from api.web.rendering import redirect, render
from grader.services import access, leaderboard
from grader.services.errors import ServiceError
from grader.services.policy import Action

router = APIRouter(include_in_schema=False)


def _rows(entries: list[leaderboard.Entry]) -> list[dict]:
    return [{"rank": e.rank, "name": e.name, "accuracy": e.accuracy, "step_ms": e.step_ms} for e in entries]


def _version(rows: list[dict]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


@router.get("/student/assignments/{slug}/leaderboard")
def leaderboard_page(slug: str, request: Request, db: SessionDep, user: Student) -> HTMLResponse:
    assignment = access.assignment_for(db, slug, user, Action.VIEW_COURSE)
    leaderboard.require_enabled(assignment)
    rows = _rows(leaderboard.entries(db, assignment))
    return render(request, "leaderboard.html", {
        "student": user, "assignment": assignment, "rows": rows, "version": _version(rows),
        "my_name": leaderboard.name_of(db, assignment, user)})


@router.get("/student/assignments/{slug}/leaderboard.json")
def leaderboard_live(slug: str, db: SessionDep, user: Student) -> JSONResponse:
    assignment = access.assignment_for(db, slug, user, Action.VIEW_COURSE)
    leaderboard.require_enabled(assignment)
    rows = _rows(leaderboard.entries(db, assignment))
    return JSONResponse({"version": _version(rows), "rows": rows}, headers={"Cache-Control": "no-store"})


@router.post("/student/assignments/{slug}/leaderboard/name", dependencies=[CsrfChecked])
def choose_name(slug: str, db: SessionDep, user: Student, name: Annotated[str, Form(max_length=200)] = "") -> Response:
    assignment = access.assignment_for(db, slug, user, Action.VIEW_COURSE)
    page = f"/student/assignments/{assignment.slug}/leaderboard"
    try:
        leaderboard.choose_name(db, assignment, user, name)
    except ServiceError as error:
        return redirect(page, f"Name not saved: {error}")
    return redirect(page, f"You appear as {' '.join(name.split())!r}." if name.strip() else "You are off the board.")


@router.post("/dashboard/assignments/{slug}/leaderboard", dependencies=[CsrfChecked])
def switch_leaderboard(slug: str, db: SessionDep, user: Staff, enabled: Annotated[bool, Form()] = False) -> Response:
    assignment = access.assignment_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    leaderboard.set_enabled(db, assignment, enabled)
    return redirect(f"/dashboard/assignments/{assignment.slug}",
                    "Leaderboard on: students see it on their page." if enabled else "Leaderboard off.")
