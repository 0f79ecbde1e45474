"""The dashboard's actions, done by the same code as the API (api/routes/*), so both behave alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import BackgroundTasks, HTTPException, UploadFile
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.routes import assignments as assignment_routes
from api.routes import courses as course_routes
from api.routes import submissions as submission_routes
from api.schemas import AssignmentCreate
from grader.store.models import Assignment, Course, GradingRun, RunEvent, Submission, User


class ActionError(Exception):
    """An action refused with a message for the instructor."""


def _message(error: HTTPException | ValidationError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors())
    return str(error.detail)


def create_assignment(db: Session, course: Course, instructor: User, *, slug: str, title: str, due_at: str,
                      pass_mark: str, with_training: bool) -> Assignment:
    """An assignment on the default spec; without training it grades correctness only."""
    try:
        due = datetime.fromisoformat(due_at).replace(tzinfo=timezone.utc) if due_at.strip() else None
        body = AssignmentCreate(slug=slug.strip(), title=title.strip(), due_at=due,
                                pass_mark=float(pass_mark) if pass_mark.strip() else None,
                                stages=None if with_training else ["correctness"])
        public = course_routes.create_assignment(course.slug, body, db, instructor)
    except ValueError as error:
        raise ActionError(_message(error) if isinstance(error, ValidationError) else str(error)) from None
    except HTTPException as error:
        raise ActionError(_message(error)) from None
    return db.get(Assignment, public.id)


async def import_roster(db: Session, course: Course, instructor: User, upload: UploadFile) -> tuple[str, list]:
    """Enroll the CSV's students; returns a summary and (email, token) of the new students."""
    try:
        result = await course_routes.import_roster(course.slug, upload, db, instructor)
    except HTTPException as error:
        raise ActionError(_message(error)) from None
    summary = (f"{len(result.students)} student(s) in the roster: {result.created} new, "
               f"{result.existing} already known.")
    return summary, [(entry.email, entry.token) for entry in result.students if entry.token]


def regrade_submission(db: Session, submission: Submission, instructor: User,
                       background: BackgroundTasks) -> GradingRun:
    """Grade one submission again now; its result counts when it finishes (audited as a score change)."""
    accepted = submission_routes.regrade_submission(submission.id, db, instructor, background)
    return db.get(GradingRun, accepted.run_id)


def start_regrade_all(db: Session, assignment: Assignment, instructor: User, background: BackgroundTasks) -> str:
    """Grade every submission again as a preview; returns the batch id."""
    accepted = assignment_routes.regrade_assignment(assignment.slug, db, instructor, background)
    return accepted.batch_id


@dataclass
class PreviewView:
    summary: str
    done: bool
    applied: bool
    changes: list[dict[str, Any]] = field(default_factory=list)


def regrade_preview(db: Session, assignment: Assignment, batch_id: str, instructor: User) -> PreviewView:
    try:
        preview = assignment_routes.preview_regrade(assignment.slug, batch_id, db, instructor)
    except HTTPException as error:
        raise ActionError(_message(error)) from None
    if preview.applied:
        summary = f"This regrade was applied: {len(preview.changes)} score(s) changed."
    elif preview.ready:
        summary = (f"All {preview.total} preview runs finished; {len(preview.changes)} score(s) would change. "
                   "Nothing changes for students until you apply.")
    else:
        summary = f"{preview.finished} of {preview.total} preview runs finished; this page updates by itself."
    changes = [{"student": change.user_email, "submission_id": change.submission_id, "old_score": change.old_score,
                "new_score": change.new_score, "delta": change.delta} for change in preview.changes]
    return PreviewView(summary=summary, done=preview.ready, applied=preview.applied, changes=changes)


def confirm_regrade(db: Session, assignment: Assignment, batch_id: str, instructor: User) -> int:
    try:
        preview = assignment_routes.apply_regrade(assignment.slug, batch_id, db, instructor)
    except HTTPException as error:
        raise ActionError(_message(error)) from None
    return len(preview.changes)


def grades_csv(db: Session, assignment: Assignment, instructor: User, policy: str) -> bytes:
    response = assignment_routes.export_grades(assignment.slug, db, instructor, policy)
    return response.body


def last_progress(db: Session, run: GradingRun) -> dict[str, Any] | None:
    event = db.scalar(select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.type == "progress")
                      .order_by(RunEvent.id.desc()).limit(1))
    return event.data if event is not None else None


def describe_progress(run: GradingRun, event: dict[str, Any] | None) -> str:
    """`running: stage cifar10 · epoch 3/10 loss 1.234 train acc 61.2%` for a running run; empty once finished."""
    if run.finished:
        return ""
    parts = [f"{run.status}: stage {run.stage}"]
    if event and event.get("stage") == run.stage:
        if isinstance(event.get("running"), str) and event["running"]:
            if isinstance(event.get("done"), int) and isinstance(event.get("total"), int) and event["total"]:
                parts.append(f"{event['done']}/{event['total']}")
            parts.append(event["running"])
        elif event.get("epoch") is not None:
            parts.append(f"epoch {event['epoch']}/{event.get('epochs') or '?'}")
    return " · ".join(parts)
