"""Grading runs as the API and dashboard see them: which run a submission shows, its place in the queue, the
runs list, and whole-assignment regrades (a preview batch, then applied at once)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, exists, func, select, true
from sqlalchemy.orm import Session

from grader.services import access
from grader.services.errors import Conflict, NotFound
from grader.services.policy import Action
from grader.store import audit, queue_estimates
from grader.store.db import autocommit_connection
from grader.store import runs as run_store
from grader.store.models import (FINISHED_STATUSES, Assignment, Enrollment, GradingRun, RunEvent, Submission, User,
                                 utcnow)


def current_run(submission: Submission) -> GradingRun | None:
    """The run whose score counts (the latest applied finished run), else the latest applied run."""
    return run_store.current_run(submission)


def pending_run(submission: Submission) -> GradingRun | None:
    """The latest applied run still queued or running (a regrade in progress), if any."""
    return next((run for run in reversed(submission.runs) if run.applied and not run.finished), None)


def status_run(submission: Submission) -> GradingRun | None:
    """The run whose progress a viewer follows: a pending one, else the one that counts."""
    return pending_run(submission) or current_run(submission)


def queue_position(db: Session, run: GradingRun) -> int | None:
    return queue_estimates.queue_position(db, run)


def position_and_start(db: Session, run: GradingRun) -> tuple[int | None, datetime | None]:
    """queue_position and estimated_start in one query."""
    return queue_estimates.position_and_start(db, run)


def events_after(db: Session, submission: Submission, last_id: int, limit: int) -> list[RunEvent]:
    """The submission's progress and status events after event `last_id`, oldest first (applied runs only: a
    regrade preview is not the student's to follow)."""
    run_ids = [run.id for run in submission.runs if run.applied]
    if not run_ids:
        return []
    return list(db.scalars(select(RunEvent).where(RunEvent.run_id.in_(run_ids), RunEvent.id > last_id)
                           .order_by(RunEvent.id).limit(limit)))


@dataclass(frozen=True)
class StreamPoll:
    """What one poll of a progress stream reads: the new events (id, type, data, run id), whether an applied run
    is still pending, and what deciding their visibility needs now (the due date, the viewer's course role)."""

    events: list[tuple[int, str, dict, int]]
    pending: bool
    due_at: datetime | None
    role: str | None


def _stream_poll_statement():
    submission_id, applied = bindparam("submission_id"), GradingRun.applied.is_(True)
    assignment = select(Assignment.due_at, Assignment.course_id).join(Submission).where(
        Submission.id == submission_id).subquery()
    head = select(
        exists().where(GradingRun.submission_id == submission_id, applied,
                       GradingRun.status.not_in(FINISHED_STATUSES)).label("pending"),
        select(assignment.c.due_at).scalar_subquery().label("due_at"),
        select(Enrollment.role).where(Enrollment.course_id == select(assignment.c.course_id).scalar_subquery(),
                                      Enrollment.user_id == bindparam("viewer_id")).scalar_subquery().label("role"),
    ).subquery()
    events = (select(RunEvent.id, RunEvent.type, RunEvent.data, RunEvent.run_id)
              .where(RunEvent.run_id.in_(select(GradingRun.id).where(GradingRun.submission_id == submission_id,
                                                                     applied)),
                     RunEvent.id > bindparam("last_id"))
              .order_by(RunEvent.id).limit(bindparam("limit")).subquery())
    # One row of the head even when there is no new event (the outer join keeps it, with NULL event columns).
    return select(head, events).select_from(head.outerjoin(events, true())).order_by(events.c.id)


# Built once: every open stream polls it when woken and every few seconds.
_STREAM_POLL = _stream_poll_statement()


def stream_poll(submission_id: int, viewer_id: int, last_id: int, limit: int) -> StreamPoll:
    """A progress stream's poll in one query and no transaction (it ran seven through the ORM in one, and open
    streams' polls were the API's largest cost while a burst waited in the queue)."""
    with autocommit_connection() as connection:
        rows = connection.execute(_STREAM_POLL, {"submission_id": submission_id, "viewer_id": viewer_id,
                                                   "last_id": last_id, "limit": limit}).all()
    first = rows[0]
    events = [(row.id, row.type, row.data, row.run_id) for row in rows if row.id is not None]
    return StreamPoll(events, bool(first.pending), first.due_at, first.role)


# Built once: each API process runs it every few seconds while streams are open.
_LATEST_EVENTS = (select(GradingRun.submission_id, func.max(RunEvent.id))
                  .join(RunEvent, RunEvent.run_id == GradingRun.id)
                  .where(GradingRun.submission_id.in_(bindparam("submission_ids", expanding=True)),
                         GradingRun.applied.is_(True))
                  .group_by(GradingRun.submission_id))


def latest_event_ids(submission_ids: list[int]) -> dict[int, int]:
    """The newest event id a progress stream would show, per submission of `submission_ids` that has one (applied
    runs only, as stream_poll); one query and no transaction."""
    with autocommit_connection() as connection:
        return dict(connection.execute(_LATEST_EVENTS, {"submission_ids": submission_ids}).all())


STREAM_RETRY_MIN_SECONDS = 2  # a refused stream is tried again after at least this long
STREAM_RETRY_MAX_SECONDS = 10  # and at most this long, however far the estimated start


def stream_retry_seconds(db: Session, submission: Submission) -> int:
    """When a client refused a progress stream should try again: half the time left to the run's estimated start
    (an estimate can be long by the workers' count, and a slot frees when the student's earlier run finishes),
    within STREAM_RETRY_MIN/MAX_SECONDS; the minimum once the run started."""
    run = status_run(submission)
    start = position_and_start(db, run)[1] if run is not None else None
    if start is None:
        return STREAM_RETRY_MIN_SECONDS
    half = (start - utcnow()).total_seconds() / 2
    return int(min(STREAM_RETRY_MAX_SECONDS, max(STREAM_RETRY_MIN_SECONDS, half)))


def last_progress(db: Session, run: GradingRun) -> dict | None:
    """The data of the run's latest progress event."""
    event = db.scalar(select(RunEvent).where(RunEvent.run_id == run.id, RunEvent.type == "progress")
                      .order_by(RunEvent.id.desc()).limit(1))
    return event.data if event is not None else None


def list_runs(db: Session, user: User, *, assignment: str | None = None, status: str | None = None,
              batch_id: str | None = None, limit: int = 200) -> list[GradingRun]:
    """Runs of the courses the caller staffs, newest first, optionally of one assignment, status or batch."""
    access.require_staff_somewhere(db, user)
    query = select(GradingRun).join(Submission).join(Assignment)
    course_ids = access.course_ids_for(db, user, Action.READ_SUBMISSION)
    if course_ids is not None:
        query = query.where(Assignment.course_id.in_(course_ids))
    if assignment:
        query = query.where(Assignment.slug == assignment)
    if status:
        query = query.where(GradingRun.status == status)
    if batch_id:
        query = query.where(GradingRun.batch_id == batch_id)
    return list(db.scalars(query.order_by(GradingRun.id.desc()).limit(limit)))


def start_regrade_batch(db: Session, assignment: Assignment, user: User) -> tuple[str, list[GradingRun]]:
    """Grade every submission again as a preview (not applied); returns the batch id and runs to publish."""
    batch_id = secrets.token_hex(8)
    runs = [run_store.new_run(db, submission, kind="preview", requested_by=user.id, applied=False,
                              batch_id=batch_id)
            for submission in db.scalars(select(Submission).where(Submission.assignment_id == assignment.id))]
    return batch_id, runs


@dataclass(frozen=True)
class ScoreChange:
    run: GradingRun
    old_score: float | None
    new_score: float | None

    @property
    def delta(self) -> float | None:
        return None if self.old_score is None or self.new_score is None else self.new_score - self.old_score


@dataclass(frozen=True)
class BatchPreview:
    batch_id: str
    assignment: Assignment
    finished: int
    total: int
    applied: bool
    changes: list[ScoreChange] = field(default_factory=list)  # only submissions whose score would change

    @property
    def ready(self) -> bool:
        return self.finished == self.total


def _batch(db: Session, assignment: Assignment, batch_id: str) -> list[GradingRun]:
    batch = db.scalars(select(GradingRun).join(Submission).where(
        GradingRun.batch_id == batch_id, Submission.assignment_id == assignment.id).order_by(GradingRun.id)).all()
    if not batch:
        raise NotFound(f"Regrade batch {batch_id!r} not found.")
    return list(batch)


def _preview(assignment: Assignment, batch_id: str, batch: list[GradingRun]) -> BatchPreview:
    changes = []
    for run in batch:
        earlier = [r for r in run.submission.runs
                   if r.applied and r.finished and r.id < run.id and r.batch_id != batch_id]
        old = earlier[-1].score if earlier else None
        if run.finished and run.score != old:
            changes.append(ScoreChange(run=run, old_score=old, new_score=run.score))
    return BatchPreview(batch_id=batch_id, assignment=assignment, finished=sum(run.finished for run in batch),
                        total=len(batch), applied=all(run.applied for run in batch), changes=changes)


def preview_batch(db: Session, assignment: Assignment, batch_id: str) -> BatchPreview:
    """Whose score would change, and by how much, if the batch were applied."""
    return _preview(assignment, batch_id, _batch(db, assignment, batch_id))


def apply_batch(db: Session, assignment: Assignment, batch_id: str, user: User) -> BatchPreview:
    """Make a finished batch's results count; every score change goes to the audit log."""
    batch = _batch(db, assignment, batch_id)
    preview = _preview(assignment, batch_id, batch)
    if preview.applied:
        raise Conflict("This regrade was applied already.")
    if not preview.ready:
        raise Conflict(f"Only {preview.finished} of {preview.total} runs of this regrade have finished; apply it "
                       "when all have.")
    changed = {change.run.id for change in preview.changes}
    for run in batch:
        run.applied, run.kind = True, "regrade"
        db.flush()
        if run.id in changed:
            audit.record_score_change(db, run, actor_id=user.id, action="regrade")
    return _preview(assignment, batch_id, batch)
