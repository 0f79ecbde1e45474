"""Progress streams wake on the worker side's commits instead of polling the store twice a second, and fall back to
polling when the notifications are not there. Real API app (in process, so the store polls can be counted), real
Postgres and Redis; the worker side is the store's own claim/event/record path that the worker runs."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis
from sqlalchemy import select

from api.main import create_app
from api.routes import submissions as submission_routes
from grader.result import GradingResult
from grader.store import event_signal
from grader.store import runs as run_store
from grader.store.db import session_scope
from grader.store.models import RunEvent
from tests.service_fixtures import REDIS_URL, submit, wait_for

IDLE_SECONDS = 3.0  # an open stream on a queued run with nothing happening; the old loop polled 6 times in it
EVENT_GAP_SECONDS = 0.3


@pytest.fixture(autouse=True)
def streams_end_on_their_own(monkeypatch):
    """A stream whose test failed ends by itself (the test client waits for every stream at its end)."""
    monkeypatch.setattr(submission_routes, "STREAM_MAX_SECONDS", 20.0)


class CountedPolls:
    """Wraps the stream's store poll to record when each one ran."""

    def __init__(self, monkeypatch) -> None:
        self.times: list[float] = []
        original = submission_routes._poll_events

        def counted(*args):
            self.times.append(time.monotonic())
            return original(*args)

        monkeypatch.setattr(submission_routes, "_poll_events", counted)

    def between(self, start: float, end: float) -> int:
        return sum(start <= moment < end for moment in self.times)


class StreamReader(threading.Thread):
    """Reads a whole event stream in the background; `finished_at` is when its `done` came."""

    def __init__(self, client, url: str, headers: dict) -> None:
        super().__init__(daemon=True)
        self.client, self.url, self.headers = client, url, headers
        self.body, self.finished_at = "", None

    def run(self) -> None:
        with self.client.stream("GET", self.url, headers=self.headers) as stream:
            self.body = "".join(stream.iter_text())
        self.finished_at = time.monotonic()


def _claim(run_id: int) -> run_store.Claim:
    with session_scope() as db:
        claim = run_store.claim_run(db, run_id, "test-worker")
    assert claim is not None
    return claim


def _record_result(claim: run_store.Claim) -> float:
    """The stage's result, which ends the run; returns when it committed."""
    result = {"score": 50.0, "max_score": 61.5, "status": "graded", "grader_version": "test",
              "stages": [{"name": "correctness", "score": 50.0, "max_score": 61.5, "status": "graded",
                          "duration_s": 1.0, "message": "", "details": {}}], "tests": []}
    with session_scope() as db:
        assert run_store.record_stage(db, claim, GradingResult.from_json(result), None, duration_s=1.0) is None
    return time.monotonic()


def _grade_like_a_worker(run_id: int, progress_events: int) -> list[float]:
    """Claim, a few progress events, the result: each its own transaction, as in the worker. Returns when each
    transaction began (the stream may poll before the test is back from the commit)."""
    began = [time.monotonic()]
    claim = _claim(run_id)
    for done in range(progress_events):
        time.sleep(EVENT_GAP_SECONDS)
        began.append(time.monotonic())
        with session_scope() as db:
            assert run_store.add_claimed_event(db, claim, "progress", {"stage": "correctness", "done": done})
    time.sleep(EVENT_GAP_SECONDS)
    began.append(time.monotonic())
    _record_result(claim)
    return began


def _open_stream(client, world, accepted, polls: CountedPolls) -> StreamReader:
    reader = StreamReader(client, f"{accepted['status_url']}/events", world.headers("alice"))
    reader.start()
    wait_for(lambda: polls.times, 10, "the stream's first poll", interval=0.05)
    return reader


def _assert_complete(reader: StreamReader, progress_events: int) -> None:
    kinds = [line.split(": ", 1)[1] for line in reader.body.splitlines() if line.startswith("event: ")]
    assert kinds == ["status", "status"] + ["progress"] * progress_events + ["status", "done"], reader.body
    done = json.loads(reader.body.split("event: done")[1].split("data: ", 1)[1].splitlines()[0])
    assert done["score"] == 50.0 and done["status"] == "graded"


def test_a_stream_polls_the_store_when_the_worker_side_commits_events(client, world, monkeypatch):
    waker = client.app.state.event_waker
    wait_for(lambda: waker.connected, 10, "the event subscriber to connect", interval=0.05)
    polls = CountedPolls(monkeypatch)
    accepted = submit(client, world)
    reader = _open_stream(client, world, accepted, polls)
    idle_from = time.monotonic()
    time.sleep(IDLE_SECONDS)
    assert polls.between(idle_from, time.monotonic()) == 0  # nothing stored, nothing polled (old: 6)

    began = _grade_like_a_worker(accepted["run_id"], progress_events=5)
    reader.join(10)
    assert reader.finished_at is not None and reader.finished_at - began[-1] < 1.0  # safety poll: 5 s
    _assert_complete(reader, progress_events=5)
    # each transaction (claim, 5 progress events, result) is followed by a poll at once, and by no more than one:
    # the old loop polled every 0.5 s, about 5 times in these ~2 s
    late = [moment for moment in began if polls.between(moment, moment + EVENT_GAP_SECONDS) != 1]
    assert not late, (began, polls.times)
    assert polls.between(began[0], float("inf")) == len(began), (began, polls.times)


def test_without_the_subscriber_a_stream_polls_as_before_and_ends(client, world, monkeypatch):
    polls = CountedPolls(monkeypatch)
    waker = client.app.state.event_waker
    waker.url = "redis://127.0.0.1:1/0"  # nothing listens there: the subscriber cannot connect again
    _drop_subscriber_connection(waker)
    wait_for(lambda: not waker.connected, 10, "the subscriber to notice", interval=0.05)
    accepted = submit(client, world)
    reader = _open_stream(client, world, accepted, polls)
    last_commit = _grade_like_a_worker(accepted["run_id"], progress_events=2)[-1]
    reader.join(10)
    assert reader.finished_at is not None and reader.finished_at - last_commit < 1.5  # not the 5 s safety poll
    _assert_complete(reader, progress_events=2)


def test_a_stream_open_when_the_subscription_drops_keeps_polling(client, world, monkeypatch):
    monkeypatch.setattr("api.event_wake.RECONNECT_SECONDS", 60.0)  # no notifications for the rest of the test
    polls = CountedPolls(monkeypatch)
    waker = client.app.state.event_waker
    wait_for(lambda: waker.connected, 10, "the event subscriber to connect", interval=0.05)
    accepted = submit(client, world)
    reader = _open_stream(client, world, accepted, polls)
    _drop_subscriber_connection(waker)
    wait_for(lambda: not waker.connected, 10, "the subscriber to notice", interval=0.05)
    last_commit = _grade_like_a_worker(accepted["run_id"], progress_events=2)[-1]
    reader.join(10)
    assert reader.finished_at is not None and reader.finished_at - last_commit < 1.5  # not the 5 s safety poll
    _assert_complete(reader, progress_events=2)


def _drop_subscriber_connection(waker) -> None:
    """Close this app's subscriber connection from the server's side, as a Redis restart would (only this one:
    others share the Redis)."""
    admin = redis.Redis.from_url(REDIS_URL)
    clients = [entry for entry in admin.client_list() if entry.get("name") == waker.client_name]
    assert clients, "the subscriber is not connected"
    for entry in clients:
        admin.client_kill_filter(_id=entry["id"])


def test_a_redis_that_does_not_answer_neither_fails_nor_slows_a_commit(client, world, monkeypatch, caplog):
    accepted = submit(client, world)
    monkeypatch.setattr(event_signal, "redis_url", lambda: "redis://127.0.0.1:1/0")
    monkeypatch.setattr(event_signal, "_publisher", event_signal._Publisher())
    started = time.monotonic()
    claim = _claim(accepted["run_id"])
    with session_scope() as db:
        assert run_store.add_claimed_event(db, claim, "progress", {"stage": "correctness", "done": 1})
    _record_result(claim)
    assert time.monotonic() - started < 1.0
    assert sum("could not announce" in record.message for record in caplog.records) == 1  # then paused
    with session_scope() as db:
        stored = db.scalars(select(RunEvent.type).where(RunEvent.run_id == accepted["run_id"]).order_by(RunEvent.id))
        assert list(stored) == ["status", "status", "progress", "done"]


def test_an_event_whose_notification_was_lost_is_found_by_the_sweep(client, world, monkeypatch):
    """The process's sweep, not each stream's own poll (every 15 s), finds it; sweeps that find nothing new wake no
    stream."""
    monkeypatch.setattr("api.event_wake.SWEEP_SECONDS", 0.5)
    waker = client.app.state.event_waker
    wait_for(lambda: waker.connected, 10, "the event subscriber to connect", interval=0.05)
    polls = CountedPolls(monkeypatch)
    accepted = submit(client, world)
    reader = _open_stream(client, world, accepted, polls)
    claim = _claim(accepted["run_id"])
    wait_for(lambda: len(polls.times) >= 2, 5, "the poll after the claim", interval=0.05)
    time.sleep(6.0)  # the sweep's first wait (5 s, begun before the patch) and then several that find nothing new
    assert len(polls.times) == 2, polls.times
    with session_scope() as db:  # stored without its notification, as when the worker's publish timed out
        db.add(RunEvent(run_id=accepted["run_id"], type="progress", data={"stage": "correctness", "done": 0}))
    stored = time.monotonic()
    wait_for(lambda: polls.between(stored, float("inf")) == 1, 3, "the sweep to wake the stream", interval=0.05)
    _record_result(claim)
    reader.join(10)
    _assert_complete(reader, progress_events=1)
