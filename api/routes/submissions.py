"""One submission: its status and result, its progress stream, its file, and instructor regrade and override."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import anyio
from fastapi import APIRouter, BackgroundTasks, Header, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session

from api.deps import ROW_ID_MAX, CurrentUser, RowId, SessionDep, publish_after_response
from api.downloads import content_disposition
from api.event_wake import EventWaker
from api.presenters import run_public, submission_public, visible_event_at
from api.schemas import OverrideCreate, RegradeAccepted, RunPublic, SubmissionPublic
from grader.services import access, submissions
from grader.services import runs as run_service
from grader.services.errors import ServiceError
from grader.services.policy import Action, allows
from grader.settings import get_settings
from grader.store import stream_slots
from grader.store.db import session_scope
from grader.store.models import Submission, User

router = APIRouter(prefix="/api/v1/submissions", tags=["submissions"])

STREAM_POLL_SECONDS = 0.5  # how often the stream looks for new events in the store when nothing wakes it
STREAM_KEEPALIVE_SECONDS = 14.0  # comment line that keeps proxies from closing an idle stream
# With event notifications (api/event_wake.py) a stream polls when woken, and at least this often. An event whose
# notification was lost (a publish timed out) is found sooner by the process's sweep (event_wake.SWEEP_SECONDS):
# this poll only finds what no event announces (a viewer's lost access) and sends the keep-alive (a little longer
# than its interval, so that each quiet one does; the client gives up on a stream quiet for 30 s).
STREAM_SAFETY_POLL_SECONDS = 15.0
STREAM_MAX_SECONDS = 3 * 3600.0  # a client reconnects after this, with Last-Event-ID
STREAM_BATCH_EVENTS = 500  # events read per poll; a longer backlog is sent over several polls


@router.get("/{submission_id}")
def read_submission(submission_id: RowId, db: SessionDep, user: CurrentUser) -> SubmissionPublic:
    """Status, place in the queue, estimated start and (once graded) the result."""
    return submission_public(db, access.submission_for(db, submission_id, user, with_runs=True), user)


@router.get("/{submission_id}/file", response_class=Response,
            responses={200: {"content": {"text/x-python": {}}}})
def read_submission_file(submission_id: RowId, db: SessionDep, user: CurrentUser) -> Response:
    submission = access.submission_for(db, submission_id, user)
    return Response(submission.content, media_type="text/x-python; charset=utf-8",
                    headers={"Content-Disposition": content_disposition("inline", submission.filename),
                             "X-Content-Type-Options": "nosniff"})


def _sse(event: str, data: dict | str, event_id: int | None = None) -> str:
    """One event; `data` a dict, or its JSON already encoded."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    payload = data if isinstance(data, str) else json.dumps(data, default=str)
    return f"{head}event: {event}\ndata: {payload}\n\n"


@dataclass(frozen=True)
class _StreamFor:
    """Who follows which submission: fixed for the stream's life (the viewer's course role and the due date, which
    decide what its events may show, are read again at every poll)."""

    submission_id: int
    viewer_id: int
    viewer_is_admin: bool
    ta_may_override: bool


def _poll_events(stream: _StreamFor, last_id: int) -> tuple[list[tuple[int, str, dict]], str | None]:
    """New events after `last_id`, and once no applied run of the submission is pending, the final state: the
    submission as a status read answers it, as JSON (so the client needs no read after `done`)."""
    poll = run_service.stream_poll(stream.submission_id, stream.viewer_id, last_id, STREAM_BATCH_EVENTS)
    sees_hidden = allows(Action.SEE_HIDDEN, poll.role, is_admin=stream.viewer_is_admin,
                         ta_may_override=stream.ta_may_override)
    chunks = [(event_id, "progress" if kind == "progress" else "status",
               {**visible_event_at(data, poll.due_at, sees_hidden), "run_id": run_id, "type": kind})
              for event_id, kind, data, run_id in poll.events]
    if poll.pending:
        return chunks, None
    return chunks, _final_state(stream)


def _final_state(stream: _StreamFor) -> str:
    """The `done` event's data: the submission as a status read answers it, read as that read does (one query for
    the submission, its assignment, course and runs and the viewer's role, instead of a lazy load of each), JSON
    encoded by pydantic. A viewer who may no longer see the submission gets no `done` (their reconnect is a 404)."""
    with session_scope() as db:
        viewer = db.get(User, stream.viewer_id)
        try:
            submission = access.submission_for(db, stream.submission_id, viewer, with_runs=True)
        except ServiceError:
            raise _AccessLost from None
        public = submission_public(db, submission, viewer).model_dump_json()
    return f'{{"submission_id":{stream.submission_id},{public[1:]}'  # SubmissionPublic always has fields


class _AccessLost(Exception):
    """The viewer lost the right to see the submission while its stream was open."""


async def _wait_for_events(waker: EventWaker, woken: asyncio.Event) -> None:
    """Until the submission's events were announced, or the next poll is due anyway."""
    timeout = STREAM_SAFETY_POLL_SECONDS if waker.connected else STREAM_POLL_SECONDS
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(woken.wait(), timeout)


async def _event_stream(stream: _StreamFor, last_id: int, lease: stream_slots.StreamLease | None,
                        waker: EventWaker) -> AsyncIterator[str]:
    """progress/status events as they are stored; one `done` with the final status when grading is over.

    Async, so that an open stream holds no thread: the short database polls run in the thread pool, when the
    submission's events were announced (or now and then, see _wait_for_events). The stream holds one of the
    viewer's stream slots, renewed while it lives and given back however it ends; a finished submission's stream
    (`lease` None) ends after its first poll and needs none."""
    started = last_sent = renewed = time.monotonic()
    try:
        with waker.watch(stream.submission_id) as woken:
            woken.seen_event_id = last_id
            while time.monotonic() - started < STREAM_MAX_SECONDS:
                woken.clear()  # before the poll: an announcement during it wakes the next wait at once
                try:
                    chunks, final = await run_in_threadpool(_poll_events, stream, last_id)
                except _AccessLost:
                    return
                for event_id, kind, data in chunks:
                    last_id = woken.seen_event_id = event_id
                    yield _sse(kind, data, event_id)
                    last_sent = time.monotonic()
                if final is not None and len(chunks) < STREAM_BATCH_EVENTS:
                    yield _sse("done", final)
                    return
                if lease is None and final is None:
                    return  # a regrade started since the stream was let open without a slot: the client tries again
                if time.monotonic() - last_sent > STREAM_KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    last_sent = time.monotonic()
                if lease is not None and time.monotonic() - renewed > stream_slots.RENEW_SECONDS:
                    if not await run_in_threadpool(stream_slots.renew, lease):
                        return  # the slot lapsed and went to another stream: the client reconnects with Last-Event-ID
                    renewed = time.monotonic()
                if len(chunks) < STREAM_BATCH_EVENTS:  # else a longer backlog: the rest is in the store already
                    await _wait_for_events(waker, woken)
    finally:
        if lease is not None:
            with anyio.CancelScope(shield=True):  # also when the client went away and the stream is being cancelled
                await run_in_threadpool(stream_slots.release, lease)


def _refuse_unless_finished(db: Session, submission_id: int, slots: int) -> None:
    """429 while the submission is still being graded, with a Retry-After from its estimated start."""
    submission = db.get(Submission, submission_id)
    if run_service.pending_run(submission) is None:
        return
    retry = run_service.stream_retry_seconds(db, submission)
    raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                        f"You already have {slots} live progress streams open. Close one (a closed stream frees "
                        f"its place at once, a dropped connection within a minute), try again in {retry} s, or "
                        f"poll /api/v1/submissions/{submission_id} instead.",
                        headers={"Retry-After": str(retry)})


@router.get("/{submission_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-Sent Events: `progress`, `status`, then one `done`"}})
def stream_events(submission_id: RowId, db: SessionDep, user: CurrentUser, request: Request,
                  last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=ROW_ID_MAX)] = None) -> StreamingResponse:
    """Progress of the grading as Server-Sent Events (event types `progress`, `status`, `done`; data is JSON). The
    first events are the run's status so far; `done` carries the submission as `GET /api/v1/submissions/{id}`
    answers it. A user may have a few streams open at once (LIVE_STREAMS_PER_USER, 3); one more is a 429 whose
    Retry-After says when to try the stream again (sooner as the run's estimated start nears)."""
    submission = access.submission_for(db, submission_id, user)
    stream = _StreamFor(submission_id, user.id, user.is_admin, submission.assignment.course.ta_may_override)
    slots = get_settings().live_streams_per_user
    # The user's slots are read in this request's transaction, and a refusal is decided in it: a refused client
    # tries again every few seconds, and each try cost three transactions.
    held = stream_slots.held(db.connection(), user.id, slots)
    free = stream_slots.may_take(held, slots)
    if not free:
        _refuse_unless_finished(db, submission_id, slots)  # a finished submission's stream is one poll, slot or not
    # The request's connection goes back to the pool now: the slot below and the stream's polls take their own, and
    # a burst of streams opening, each holding one connection while waiting for a second, emptied the pool.
    db.close()
    lease = stream_slots.acquire(user.id, slots, held)
    if lease is None and free:
        _refuse_unless_finished(db, submission_id, slots)  # another stream of the user took the free slot first
    waker = getattr(request.app.state, "event_waker", None) or EventWaker(None)  # None: an app run without lifespan
    return StreamingResponse(_event_stream(stream, last_event_id or 0, lease, waker),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.post("/{submission_id}/regrade", status_code=status.HTTP_202_ACCEPTED)
def regrade_submission(submission_id: RowId, db: SessionDep, user: CurrentUser,
                       background: BackgroundTasks) -> RegradeAccepted:
    """Grade the submission again; the new score counts (and is audited) when the run finishes."""
    submission = access.submission_for(db, submission_id, user, Action.REGRADE)
    run = submissions.regrade(db, submission, user)
    publish_after_response(background, [run])
    return RegradeAccepted(run_id=run.id, status_url=f"/api/v1/submissions/{submission.id}")


@router.post("/{submission_id}/override", status_code=status.HTTP_201_CREATED)
def override_score(submission_id: RowId, body: OverrideCreate, db: SessionDep, user: CurrentUser) -> RunPublic:
    """Set the score by hand: a signed run carrying the reason, recorded in the audit log."""
    submission = access.submission_for(db, submission_id, user, Action.OVERRIDE)
    return run_public(db, submissions.override(db, submission, user, score=body.score, reason=body.reason))
