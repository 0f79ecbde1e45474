"""Scores set by hand: a finished, signed run of kind `override` carrying the reason, audited as a score change."""

from __future__ import annotations

import copy

from sqlalchemy.orm import Session

from grader.store import audit
from grader.store import runs as run_store
from grader.store.models import GradingRun, Submission, utcnow
from grader.store.signing import sign_run


def record_override(db: Session, submission: Submission, *, score: float, reason: str,
                    actor_id: int) -> GradingRun:
    """A run that sets the submission's score to `score` (at most full marks), keeping the current run's checks."""
    current = run_store.current_run(submission)
    base = copy.deepcopy(current.result) if current is not None and current.result else {"stages": [], "tests": []}
    max_score = (current.max_score if current is not None and current.max_score else None) \
        or submission.assignment.max_score
    score = min(score, max_score)
    now = utcnow()
    base.update(score=score, max_score=max_score, status="graded", message=f"Score set by an instructor: {reason}")
    run = GradingRun(submission=submission, status="graded", stage="override", queue="", kind="override",
                     requested_by=actor_id, grader_version=current.grader_version if current else "",
                     spec_version=submission.assignment.spec_version,
                     image_digest=current.image_digest if current else "", created_at=now, enqueued_at=now,
                     started_at=now, finished_at=now, result=base, score=score, max_score=max_score, message=reason)
    db.add(run)
    db.flush()
    run.signature = sign_run(run)
    run_store.add_event(db, run, "done", {"status": "graded", "score": score, "max_score": max_score})
    audit.record_score_change(db, run, actor_id=actor_id, action="override")
    return run
