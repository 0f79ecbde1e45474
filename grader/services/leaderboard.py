"""The leaderboard of an assignment (opt-in by its instructors): each student's best CIFAR-10 test accuracy from a
run whose server signature verifies, with that run's training-step time, under a pseudonym the student chose.
Students who chose no name are not listed; unsigned or tampered runs never count."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.services.errors import Conflict, Invalid, NotFound
from grader.store.models import Assignment, GradingRun, LeaderboardName, Submission, User
from grader.store.signing import verify_run

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{1,38}[A-Za-z0-9]$")
TRAINING_STAGE = "cifar10"


@dataclass(frozen=True)
class Entry:
    rank: int
    name: str
    accuracy: float  # fraction
    step_ms: float | None  # training-step time measured by the speed probe, milliseconds per batch
    run_id: int


def require_enabled(assignment: Assignment) -> None:
    if not assignment.leaderboard:
        raise NotFound(f"{assignment.slug} has no leaderboard.")


def _training_record(result: dict[str, Any] | None) -> dict[str, Any] | None:
    for stage in (result or {}).get("stages", []):
        if stage.get("name") == TRAINING_STAGE and stage.get("status") == "graded":
            details = stage.get("details") or {}
            record = details.get(TRAINING_STAGE)
            return record if isinstance(record, dict) else details
    return None


def signed_training(run: GradingRun) -> tuple[float, float | None] | None:
    """(test accuracy as a fraction, step ms) of a finished, applied run whose signature verifies; else None."""
    if not run.finished or not run.applied or not verify_run(run):
        return None
    record = _training_record(run.result)
    accuracy = record.get("test_accuracy") if record else None
    if not isinstance(accuracy, (int, float)) or isinstance(accuracy, bool):
        return None
    step = record.get("step_ms")
    return (float(accuracy) / 100 if accuracy > 1 else float(accuracy),
            float(step) if isinstance(step, (int, float)) else None)


def entries(db: Session, assignment: Assignment) -> list[Entry]:
    """Ranked by accuracy (higher first), then step time (faster first), then the earlier run."""
    names = {row.user_id: row.name for row in db.scalars(select(LeaderboardName)
                                                         .where(LeaderboardName.assignment_id == assignment.id))}
    best: dict[int, tuple[float, float, int, float | None]] = {}
    runs = db.scalars(select(GradingRun).join(Submission, Submission.id == GradingRun.submission_id)
                      .where(Submission.assignment_id == assignment.id, Submission.user_id.in_(list(names)),
                             GradingRun.status == "graded"))
    for run in runs:
        measured = signed_training(run)
        if measured is None:
            continue
        accuracy, step = measured
        key = (accuracy, -(step if step is not None else float("inf")), -run.id, step)
        user_id = run.submission.user_id
        if user_id not in best or key[:3] > best[user_id][:3]:
            best[user_id] = key
    ranked = sorted(best.items(), key=lambda item: item[1][:3], reverse=True)
    return [Entry(rank, names[user_id], key[0], key[3], -key[2]) for rank, (user_id, key) in enumerate(ranked, 1)]


def name_of(db: Session, assignment: Assignment, user: User) -> str | None:
    row = db.scalar(select(LeaderboardName).where(LeaderboardName.assignment_id == assignment.id,
                                                  LeaderboardName.user_id == user.id))
    return row.name if row else None


def choose_name(db: Session, assignment: Assignment, user: User, name: str) -> None:
    """Set (or with an empty name, withdraw) the student's pseudonym; it must not be taken."""
    require_enabled(assignment)
    name = " ".join(name.split())
    row = db.scalar(select(LeaderboardName).where(LeaderboardName.assignment_id == assignment.id,
                                                  LeaderboardName.user_id == user.id))
    if not name:
        if row is not None:
            db.delete(row)
        db.flush()
        return
    if not NAME_PATTERN.match(name):
        raise Invalid("Choose a name of 3 to 40 letters, digits, spaces, dots, dashes or underscores, starting and "
                      "ending with a letter or digit.")
    if name.lower() in (user.email.lower(), user.email.split("@")[0].lower(), (user.name or "").lower()):
        raise Invalid("Choose a pseudonym, not your name or email: the leaderboard is seen by the whole course.")
    taken = db.scalar(select(LeaderboardName).where(LeaderboardName.assignment_id == assignment.id,
                                                    LeaderboardName.name == name))
    if taken is not None and taken.user_id != user.id:
        raise Conflict(f"The name {name!r} is taken; choose another.")
    if row is None:
        db.add(LeaderboardName(assignment_id=assignment.id, user_id=user.id, name=name))
    else:
        row.name = name
    db.flush()


def set_enabled(db: Session, assignment: Assignment, enabled: bool) -> None:
    assignment.leaderboard = enabled
    db.flush()
