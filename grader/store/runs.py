"""The life of a grading run in the store: create, claim, renew, advance to the next stage, finish.

Postgres is the source of truth and the broker only a wake-up call: every transition is a guarded update of the
run row (status and claim number), so a task delivered twice, or by a worker that was presumed dead, changes
nothing the second time. The guard is a conditional UPDATE whose row count says who won (not SELECT ... FOR
UPDATE, which SQLite ignores), so it holds on the embedded store too. Only recording a claimed run's result reads
it with SELECT ... FOR UPDATE under the same guard on Postgres, which re-checks the guard on the locked row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from grader import __version__ as GRADER_VERSION
from grader.queues import queue_for_stage
from grader.result import GradingResult
from grader.settings import get_settings
from grader.store import audit, faults
from grader.store.event_signal import note_new_events
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


REUSABLE_KINDS = ("submit", "regrade")  # never an override (an instructor's score and reason) or a reuse


def reusable_run(db: Session, submission: Submission) -> GradingRun | None:
    """A finished, signed, applied run of the same bytes, by the same student, under the same spec and grader
    version, from their own submit or regrade, with every stage run (none skipped, e.g. for a spent ration)."""
    if not get_settings().result_reuse:
        return None
    candidates = db.scalars(select(GradingRun).join(Submission).where(
        Submission.sha256 == submission.sha256, Submission.assignment_id == submission.assignment_id,
        Submission.user_id == submission.user_id, Submission.id != submission.id, GradingRun.status == "graded",
        GradingRun.applied.is_(True), GradingRun.kind.in_(REUSABLE_KINDS),
        GradingRun.spec_version == submission.assignment.spec_version, GradingRun.grader_version == GRADER_VERSION,
        GradingRun.signature != "").order_by(GradingRun.id.desc()).limit(5))
    stages = list(submission.assignment.stages)
    for run in candidates:
        ran = {stage.get("name"): stage.get("status") for stage in (run.result or {}).get("stages", [])}
        if all(name in ran and ran[name] != "skipped" for name in stages):
            return run
    return None


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
    note_new_events(db, run.submission_id)


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
    submission_id: int  # whose progress streams are told of the events stored under this claim


def _claimed_event_insert():
    """INSERT ... SELECT of one event, guarded by the run's status and claim number (bound per call)."""
    owned = select(GradingRun.id, bindparam("event_type", type_=RunEvent.type.type),
                   bindparam("event_data", type_=RunEvent.data.type),
                   bindparam("event_created_at", type_=RunEvent.created_at.type)).where(
        GradingRun.id == bindparam("run_id"), GradingRun.status == "running",
        GradingRun.attempts == bindparam("attempt"))
    # On the table: given parameters, an ORM insert would take them for rows of a bulk insert. SQLAlchemy keeps the
    # row count of an INSERT only when asked (else it reads -1 from the closed cursor), and the count says whether
    # the claim still owned the run.
    return insert(RunEvent.__table__).from_select(["run_id", "type", "data", "created_at"], owned).execution_options(
        preserve_rowcount=True)


# The worker's guarded statements, built once: it runs them several times per grade, and building one cost about
# as much CPU as running it.
_CLAIMED_EVENT_INSERT = _claimed_event_insert()
_TOUCH_OWNED = update(GradingRun).where(
    GradingRun.id == bindparam("run_id"), GradingRun.status == "running",
    GradingRun.attempts == bindparam("attempt")).values(worker=GradingRun.worker).execution_options(
    synchronize_session=False)


# With its submission, which the signature covers (its sha256), but not the submission's file.
_WITH_SUBMISSION = joinedload(GradingRun.submission).defer(Submission.content)
_LOCK_OWNED = select(GradingRun).where(
    GradingRun.id == bindparam("run_id"), GradingRun.status == "running",
    GradingRun.attempts == bindparam("attempt")).options(_WITH_SUBMISSION).with_for_update(
    of=GradingRun).execution_options(populate_existing=True)


def add_claimed_event(db: Session, claim: Claim, event_type: str, data: dict[str, Any]) -> bool:
    """An event of a running run, stored only while this claim still owns it; one INSERT ... SELECT guarded by the
    run's status and claim number (a worker stores several per grade: loading the run for each cost more)."""
    inserted = db.execute(_CLAIMED_EVENT_INSERT, {"run_id": claim.run_id, "attempt": claim.attempt,
                                                  "event_type": event_type, "event_data": data,
                                                  "event_created_at": utcnow()})
    if inserted.rowcount != 1:
        return False
    note_new_events(db, claim.submission_id)
    return True


def claim_run(db: Session, run_id: int, worker: str) -> Claim | None:
    """Move a queued run to running; None when someone else took it or it is finished. (A run waiting out a fault
    is simply not published until its back-off ends, see grader/store/sweep.py.)"""
    # With its submission and assignment (the claim carries the file and the spec): one query, not three.
    run = db.get(GradingRun, run_id, populate_existing=True,
                 options=(joinedload(GradingRun.submission).joinedload(Submission.assignment),))
    now = utcnow()
    if run is None or run.status != "queued":
        return None
    if run.attempts - (run.infra_faults or 0) >= get_settings().run_max_attempts:
        # Workers died with this run again and again: not the student's doing, so no score.
        if _take(db, run, now):
            finish_unscored(db, run, "We could not grade this file after several tries because of a problem on "
                                     "our side. Nothing is wrong with your submission and this does not count; "
                                     "an instructor has been told and can regrade it.")
        return None
    if not _take(db, run, now, worker):
        return None
    add_event(db, run, "status", {"status": "running", "stage": run.stage, "attempt": run.attempts})
    assignment = run.submission.assignment
    partial = GradingResult.from_json(run.result) if run.result else None
    return Claim(run.id, run.attempts, run.stage, run.submission.content, assignment.spec_toml,
                 tuple(assignment.stages), partial, run.submission_id)


def _take(db: Session, run: GradingRun, now, worker: str = "") -> bool:
    """queued -> running with the next claim number, if nobody else did it first (the row count decides)."""
    written = {"status": "running", "attempts": run.attempts + 1, "started_at": run.started_at or now,
               "deadline": now + timedelta(seconds=get_settings().run_lease_seconds), "worker": worker or run.worker}
    taken = db.execute(update(GradingRun).where(
        GradingRun.id == run.id, GradingRun.status == "queued", GradingRun.attempts == run.attempts).values(
        **written).execution_options(synchronize_session=False)).rowcount
    if taken != 1:
        return False
    # The row is what the guard found (same claim number) plus `written`: no need to read it back.
    for name, value in written.items():
        set_committed_value(run, name, value)
    return True


def _owned(db: Session, claim: Claim) -> GradingRun | None:
    """The run, write-locked, if this claim still owns it (not re-queued by the sweep meanwhile)."""
    owner = {"run_id": claim.run_id, "attempt": claim.attempt}
    if db.get_bind().dialect.name == "postgresql":
        # One round trip: Postgres locks the row and re-checks the guard on its newest version before returning
        # it, so a sweep that re-queued the run first leaves nothing to return (issue 14: the touch and the read
        # were two statements of the three that record a grade).
        return db.scalars(_LOCK_OWNED, owner).one_or_none()
    # SQLite ignores FOR UPDATE: the guarded UPDATE takes the database's write lock before the run is read.
    if db.execute(_TOUCH_OWNED, owner).rowcount != 1:
        return None
    return db.get(GradingRun, claim.run_id, populate_existing=True, options=(_WITH_SUBMISSION,))


def renew_lease(db: Session, claim: Claim) -> bool:
    return db.execute(update(GradingRun).where(
        GradingRun.id == claim.run_id, GradingRun.status == "running", GradingRun.attempts == claim.attempt).values(
        deadline=utcnow() + timedelta(seconds=get_settings().run_lease_seconds)).execution_options(
        synchronize_session=False)).rowcount == 1


def release(db: Session, claim: Claim, reason: str) -> bool:
    """After an infrastructure fault: the run waits (delayed, no score) and is retried after a back-off; past the
    retry period it ends unscored. True while it waits, False when it ended or this claim no longer owns it."""
    run = _owned(db, claim)
    if run is None:
        return False
    if faults.delay(db, run, reason) is None:
        finish_unscored(db, run, faults.GAVE_UP_MESSAGE)
        return False
    return True


def give_back(db: Session, claim: Claim, reason: str) -> bool:
    """A stopping worker puts its claimed run back in the queue at once: nothing failed, so no back-off."""
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
                 image_digest: str = "", backend: str = "",
                 events: Iterable[tuple[str, dict[str, Any]]] = ()) -> str | None:
    """Record the result after one finished stage: the run moves on to `next_stage` (its queue is returned, to
    publish the run to) or, when that is None, finishes. `events` (type, data), e.g. the stage's stage_finished, are
    stored first. Nothing is written, and None returned, when this claim no longer owns the run."""
    run = _owned(db, claim)
    if run is None:
        return None
    for event_type, data in events:
        add_event(db, run, event_type, data)
    run.stage_seconds = {**run.stage_seconds, claim.stage: round(duration_s, 3)}
    faults.recovered(run)
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


def finish_unscored(db: Session, run: GradingRun, message: str) -> None:
    """End a run that a fault, never the student, kept from grading: an error without a score (it never counts in
    exports or badges); the stages recorded before stay visible, and `message` explains."""
    result = dict(run.result) if run.result else {"stages": [], "tests": []}
    result.update(status="error", message=message)
    run.result = result
    run.status, run.score = "error", None
    run.max_score = float(run.submission.assignment.max_score)
    run.finished_at, run.deadline, run.message = utcnow(), None, message
    run.signature = sign_run(run)
    add_event(db, run, "done", {"status": run.status, "score": None, "max_score": run.max_score})


def fail(db: Session, claim: Claim, message: str) -> bool:
    """End a claimed run as an unscored error (a bug in the grader, never the student's timeout or crash)."""
    run = _owned(db, claim)
    if run is None:
        return False
    finish_unscored(db, run, message)
    return True


def _store_tests(db: Session, run: GradingRun) -> None:
    """One row per check, in one multi-row INSERT on the table (not the ORM's bulk insert, which cost a third more
    CPU for the same rows): as ORM objects the ~63 rows of a grade cost the worker more than the rest of recording
    it."""
    rows = [{"run_id": run.id, "name": str(test.get("name", ""))[:200], "stage": str(test.get("stage", "")),
             "status": str(test.get("status", "")), "score": float(test.get("score", 0.0)),
             "max_score": float(test.get("max_score", 0.0)), "visibility": str(test.get("visibility", "visible"))}
            for test in (run.result or {}).get("tests", [])]
    if rows:
        db.execute(insert(TestResultRow.__table__), rows)


def current_run(submission: Submission) -> GradingRun | None:
    """The run whose score counts: the latest applied finished run with a score (a run a fault ended unscored
    replaces nothing), else the latest applied finished run, else the latest applied run."""
    applied = [run for run in submission.runs if run.applied]
    finished = [run for run in applied if run.finished]
    scored = [run for run in finished if run.score is not None]
    return (scored or finished or applied or [None])[-1]
