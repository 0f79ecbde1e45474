"""What the dashboard's forms need beyond one service call: reading a form into a use case's arguments, and
wording a result for the page. The use cases themselves are grader/services, the same ones the API calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.schemas import AssignmentCreate, LatePolicy
from grader.services import courses
from grader.services import runs as run_service
from grader.services.errors import Invalid
from grader.store.models import Assignment, Course, GradingRun


def _message(error: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors())


def parse_due(text: str) -> datetime | None:
    """A date and time from a form (UTC unless it names its offset); None for an empty field."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Invalid(f"{text.strip()!r} is not a date and time; use the form 2026-12-24T23:59.") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def create_assignment(db: Session, course: Course, *, slug: str, title: str, due_at: str, pass_mark: str,
                      with_training: bool) -> Assignment:
    """An assignment on the default spec; without training it grades correctness only."""
    try:
        body = AssignmentCreate(slug=slug.strip(), title=title.strip(), due_at=parse_due(due_at),
                                pass_mark=float(pass_mark) if pass_mark.strip() else None,
                                stages=None if with_training else ["correctness"])
    except ValidationError as error:
        raise Invalid(_message(error)) from None
    except ValueError as error:
        raise Invalid(str(error)) from None
    return courses.create_assignment(db, course, slug=body.slug, title=body.title, due_at=body.due_at,
                                     late_policy=body.late_policy.model_dump(), pass_mark=body.pass_mark,
                                     stages=body.stages)


def deadline_changes(assignment: Assignment, *, due_at: str, penalty_per_day: str, max_late_days: str
                     ) -> dict[str, Any]:
    """The deadline form's fields as `courses.update_assignment` changes: an empty due date removes it; the late
    policy is the share of the score lost per started late day (in percent) and the last day that still earns.
    The due date is left out when it is the one the form showed (to the second): saving only the policy must not
    move a deadline set with more precision through the API, nor recompute anyone's lateness."""
    due = parse_due(due_at)
    try:
        policy = LatePolicy(penalty_per_day=float(penalty_per_day or 0) / 100, max_late_days=int(max_late_days or 0))
    except ValidationError as error:
        raise Invalid(_message(error)) from None
    except ValueError:
        raise Invalid("The late policy takes a percentage and a whole number of days.") from None
    changes: dict[str, Any] = {"late_policy": policy.model_dump()}
    shown = assignment.due_at.replace(microsecond=0) if assignment.due_at else None
    if due != shown:
        changes["due_at"] = due
    return changes


def roster_summary(entries: list[courses.RosterEntry]) -> tuple[str, list[tuple[str, str]]]:
    """A summary of an import and (email, token) of the new users."""
    created = sum(entry.token is not None for entry in entries)
    summary = f"{len(entries)} people in the roster: {created} new, {len(entries) - created} already known."
    return summary, [(entry.user.email, entry.token) for entry in entries if entry.token]


@dataclass
class PreviewView:
    summary: str
    done: bool
    applied: bool
    changes: list[dict[str, Any]] = field(default_factory=list)


def preview_view(preview: run_service.BatchPreview) -> PreviewView:
    if preview.applied:
        summary = f"This regrade was applied: {len(preview.changes)} score(s) changed."
    elif preview.ready:
        summary = (f"All {preview.total} preview runs finished; {len(preview.changes)} score(s) would change. "
                   "Nothing changes for students until you apply.")
    else:
        summary = f"{preview.finished} of {preview.total} preview runs finished; this page updates by itself."
    changes = [{"student": change.run.submission.user.email, "submission_id": change.run.submission_id,
                "old_score": change.old_score, "new_score": change.new_score, "delta": change.delta}
               for change in preview.changes]
    return PreviewView(summary=summary, done=preview.ready, applied=preview.applied, changes=changes)


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
