"""The life of a grading run in the store: create, claim, renew, advance to the next stage, finish.

Postgres is the source of truth and the broker only a wake-up call: every transition is a guarded update of the
run row (status and claim number), so a task delivered twice, or by a worker that was presumed dead, changes
nothing the second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader import __version__ as GRADER_VERSION
from grader.queues import queue_for_stage
from grader.result import GradingResult, StageResult
from grader.settings import get_settings
from grader.store import audit
from grader.store.models import FINISHED_STATUSES, GradingRun, RunEvent, Submission, TestResultRow, utcnow
from grader.store.signing import sign_run


def new_run(db: Session, submission: Submission, *, kind: str, requested_by: int | None,
            applied: bool = True, batch_id: str | None = None) -> GradingRun:
    """A queued run at the first stage of the assignment (committed by the caller, then published)."""
    assignment = submission.assignment
    first_stage = assignment.stages[0]
    now = utcnow()
    run = GradingRun(submission=submission, status="queued", stage=first_stage, queue=queue_for_stage(first_stage),
                     kind=kind, applied=applied, batch_id=batch_id, requested_by=requested_by,
                     grader_version=GRADER_VERSION, spec_version=assignment.spec_version, created_at=now,
                     enqueued_at=now, deadline=now + timedelta(seconds=get_settings().run_requeue_queued_seconds))
    db.add(run)
    db.flush()
    add_event(db, run, "status", {"status": "queued", "stage": run.stage})
    return run


def reusable_run(db: Session, submission: Submission) -> GradingRun | None:
    """A finished, signed, applied run of the same bytes under the same spec and grader version."""
    if not get_settings().result_reuse:
        return None
    return db.scalar(select(GradingRun).join(Submission).where(
        Submission.sha256 == submission.sha256, Submission.assignment_id == submission.assignment_id,
        Submission.id != submission.id, GradingRun.status == "graded", GradingRun.applied.is_(True),
        GradingRun.spec_version == submission.assignment.spec_version, GradingRun.grader_version == GRADER_VERSION,
        GradingRun.signature != "").order_by(GradingRun.id.desc()).limit(1))


def reuse_run(db: Session, submission: Submission, source: GradingRun, requested_by: int | None) -> GradingRun:
    """A finished run for `submission` carrying the result of an identical earlier file."""
    now = utcnow()
    run = GradingRun(submission=submission, status=source.status, stage=source.stage, queue=source.queue,
                     kind="reuse", requested_by=requested_by, grader_version=source.grader_version,
                     spec_version=source.spec_version, image_digest=source.image_digest, backend=source.backend,
                     created_at=now, enqueued_at=now, started_at=now, finished_at=now, attempts=0,
                     stage_seconds={}, result=source.result, score=source.score, max_score=source.max_score,
                     reused_from_run_id=source.id, message=f"Identical to an earlier file; result of run {source.id}.")
    db.add(run)
    db.flush()
    _store_tests(db, run)
    run.signature = sign_run(run)
    add_event(db, run, "done", {"status": run.status, "score": run.score, "max_score": run.max_score})
    return run


def add_event(db: Session, run: GradingRun, event_type: str, data: dict[str, Any]) -> None:
    db.add(RunEvent(run_id=run.id, type=event_type, data=data))


@dataclass(frozen=True)
class Claim:
    """What a worker needs to grade one stage of a run, taken when it moved the run to `running`."""

    run_id: int
    attempt: int
    stage: str
    source: bytes
    spec_toml: str
    stages: tuple[str, ...]  # the assignment's stages, in the order they run
    partial_result: GradingResult | None  # the stages recorded so far


def claim_run(db: Session, run_id: int, worker: str) -> Claim | None:
    """Move a queued run to running (row-locked); None when someone else has it or it is finished."""
    run = db.scalar(select(GradingRun).where(GradingRun.id == run_id).with_for_update())
    if run is None or run.status != "queued":
        return None
    if run.attempts >= get_settings().run_max_attempts:
        _finish_failed(db, run, "We could not grade this file after several tries because of a problem on our "
                                "side. Nothing is wrong with your submission; an instructor has been told.")
        return None
    now = utcnow()
    run.status, run.worker, run.attempts = "running", worker, run.attempts + 1
    run.started_at = run.started_at or now
    run.deadline = now + timedelta(seconds=get_settings().run_lease_seconds)
    add_event(db, run, "status", {"status": "running", "stage": run.stage, "attempt": run.attempts})
    assignment = run.submission.assignment
    partial = GradingResult.from_json(run.result) if run.result else None
    return Claim(run.id, run.attempts, run.stage, run.submission.content, assignment.spec_toml,
                 tuple(assignment.stages), partial)


def _owned(db: Session, claim: Claim) -> GradingRun | None:
    """The run, locked, if this claim still owns it (not re-queued by the sweep meanwhile)."""
    run = db.scalar(select(GradingRun).where(GradingRun.id == claim.run_id).with_for_update())
    if run is None or run.status != "running" or run.attempts != claim.attempt:
        return None
    return run


def renew_lease(db: Session, claim: Claim) -> bool:
    run = _owned(db, claim)
    if run is None:
        return False
    run.deadline = utcnow() + timedelta(seconds=get_settings().run_lease_seconds)
    return True


def release(db: Session, claim: Claim, reason: str) -> bool:
    """Put a run back in its queue after an infrastructure fault (a retry, never a result)."""
    run = _owned(db, claim)
    if run is None:
        return False
    requeue(db, run, reason)
    return True


def requeue(db: Session, run: GradingRun, reason: str) -> None:
    now = utcnow()
    run.status, run.enqueued_at, run.message = "queued", now, reason
    run.deadline = now + timedelta(seconds=get_settings().run_requeue_queued_seconds)
    add_event(db, run, "status", {"status": "queued", "stage": run.stage, "reason": reason})


def record_stage(db: Session, claim: Claim, result: GradingResult, next_stage: str | None, *, duration_s: float,
                 image_digest: str = "", backend: str = "") -> str | None:
    """Record the result after one finished stage: the run moves on to `next_stage` (its queue is returned, to
    publish the run to) or, when that is None, finishes. Nothing is written, and None returned, when this claim no
    longer owns the run."""
    run = _owned(db, claim)
    if run is None:
        return None
    run.stage_seconds = {**run.stage_seconds, claim.stage: round(duration_s, 3)}
    run.image_digest = image_digest or run.image_digest
    run.backend = backend or run.backend
    if next_stage is None:
        _finish(db, run, result)
        return None
    run.result = result.to_json()
    run.score, run.max_score = result.score, result.max_score
    run.stage, run.queue = next_stage, queue_for_stage(next_stage)
    add_event(db, run, "progress", {"stage": claim.stage, "done": True, "score": run.score})
    requeue(db, run, "")
    return run.queue


def _finish(db: Session, run: GradingRun, result: GradingResult) -> None:
    run.result = result.to_json()
    run.status = result.status if result.status in FINISHED_STATUSES else "error"
    run.score, run.max_score = float(result.score), float(result.max_score)
    run.finished_at, run.deadline = utcnow(), None
    run.message = result.message or run.message if run.status != "graded" else ""
    _store_tests(db, run)
    run.signature = sign_run(run)
    add_event(db, run, "done", {"status": run.status, "score": run.score, "max_score": run.max_score})
    if run.kind == "regrade" and run.applied:
        audit.record_score_change(db, run, actor_id=run.requested_by, action="regrade")


def _finish_failed(db: Session, run: GradingRun, message: str) -> None:
    """End the run as an error the grader caused: the stages already recorded keep their results, the others
    count as errors with their points (so the maximum stays the assignment's), and `message` explains."""
    assignment = run.submission.assignment
    earlier = GradingResult.from_json(run.result) if run.result else GradingResult.of_stages(
        [], [], grader_version=GRADER_VERSION)
    done = {stage.name for stage in earlier.stages}
    unfinished = [StageResult(name=name, score=0.0, max_score=float(assignment.stage_weights.get(name, 0.0)),
                              status="error", duration_s=0.0, message=message)
                  for name in assignment.stages if name not in done]
    result = GradingResult.of_stages(earlier.stages + unfinished, earlier.tests, grader_version=GRADER_VERSION,
                                     extra=earlier.extra)
    result.status, result.message = "error", message
    if not result.stages:
        result.max_score = float(assignment.max_score)
    _finish(db, run, result)


def fail(db: Session, claim: Claim, message: str) -> bool:
    """End a claimed run as an error (a bug in the grader, never the student's timeout or crash)."""
    run = _owned(db, claim)
    if run is None:
        return False
    _finish_failed(db, run, message)
    return True


def _store_tests(db: Session, run: GradingRun) -> None:
    for test in (run.result or {}).get("tests", []):
        db.add(TestResultRow(run_id=run.id, name=str(test.get("name", ""))[:200], stage=str(test.get("stage", "")),
                             status=str(test.get("status", "")), score=float(test.get("score", 0.0)),
                             max_score=float(test.get("max_score", 0.0)),
                             visibility=str(test.get("visibility", "visible"))))


def current_run(submission: Submission) -> GradingRun | None:
    """The run whose score counts: the latest applied finished run, else the latest applied run."""
    applied = [run for run in submission.runs if run.applied]
    finished = [run for run in applied if run.finished]
    return (finished or applied or [None])[-1]
