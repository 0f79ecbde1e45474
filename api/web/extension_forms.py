"""Staff pages for deadlines: an assignment's due date and late policy, its extensions, granting one, a student's
late-day tokens in the course, and the audit entries of all of these. The rule and the recomputation are
grader/services/extensions.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import SessionDep
from api.web import actions
from api.web.auth import CsrfChecked, Staff
from api.web.rendering import redirect, render
from grader.services import access, audit, courses, extensions
from grader.services.errors import ServiceError
from grader.services.policy import Action

router = APIRouter(include_in_schema=False)


@router.get("/dashboard/assignments/{slug}/extensions")
def extensions_page(slug: str, request: Request, db: SessionDep, user: Staff) -> HTMLResponse:
    assignment = access.assignment_for(db, slug, user, Action.READ_SUBMISSION)
    return render(request, "extensions.html", {
        "user": user, "assignment": assignment, "extensions": extensions.extensions_of(db, assignment),
        "may_edit": access.may(db, user, assignment.course, Action.EDIT_ASSIGNMENTS),
        "history": audit.deadline_history(db, assignment)
        if access.may(db, user, assignment.course, Action.READ_AUDIT) else None})


@router.post("/dashboard/assignments/{slug}/deadline", dependencies=[CsrfChecked])
def change_deadline(slug: str, db: SessionDep, user: Staff, due_at: Annotated[str, Form()] = "",
                    penalty_percent: Annotated[str, Form()] = "0", max_late_days: Annotated[str, Form()] = "0"
                    ) -> Response:
    assignment = access.assignment_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    page = f"/dashboard/assignments/{assignment.slug}/extensions"
    try:
        changes = actions.deadline_changes(assignment, due_at=due_at, penalty_per_day=penalty_percent,
                                           max_late_days=max_late_days)
        courses.update_assignment(db, assignment, changes, actor_id=user.id)
    except ServiceError as error:
        return redirect(page, f"Not changed: {error}")
    if "due_at" not in changes:
        return redirect(page, "Late policy saved; the due date is unchanged.")
    due = changes["due_at"].strftime("%Y-%m-%d %H:%M:%S UTC") if changes["due_at"] else "none"
    return redirect(page, f"Due date {due} and late policy saved; every submission's lateness is recomputed from "
                          "its upload time.")


@router.post("/dashboard/assignments/{slug}/extensions", dependencies=[CsrfChecked])
def grant_extension(slug: str, db: SessionDep, user: Staff, email: Annotated[str, Form()],
                    due_at: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "") -> Response:
    assignment = access.assignment_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    page = f"/dashboard/assignments/{assignment.slug}/extensions"
    try:
        changed = extensions.grant_extension(db, assignment, email=email, due_at=actions.parse_due(due_at), reason=reason,
                                             actor=user)
    except ServiceError as error:
        return redirect(page, f"Not changed: {error}")
    what = "Extension removed" if not due_at.strip() else "Extension granted"
    return redirect(page, f"{what} for {email.strip()}; lateness recomputed for {len(changed)} submission(s).")


@router.post("/dashboard/assignments/{slug}/late-days", dependencies=[CsrfChecked])
def grant_late_days(slug: str, db: SessionDep, user: Staff, email: Annotated[str, Form()],
                    tokens: Annotated[int, Form()]) -> Response:
    assignment = access.assignment_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    page = f"/dashboard/assignments/{assignment.slug}/extensions"
    try:
        changed = extensions.grant_late_days(db, assignment.course, email=email, tokens=tokens, actor=user)
    except ServiceError as error:
        return redirect(page, f"Not changed: {error}")
    return redirect(page, f"{email.strip()} has {tokens} late-day token(s) in {assignment.course.slug}; lateness "
                          f"recomputed for {len(changed)} submission(s).")
