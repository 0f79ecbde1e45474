"""At most three live progress streams per user, counted across API processes: two real uvicorn servers on the
real Postgres (no worker, so the runs stay queued and the streams stay open)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from grader.settings import PROJECT_ROOT
from tests.service_fixtures import submit, wait_for


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def servers(clean_db, tmp_path):
    """Two API processes on the test database; their base URLs."""
    processes, urls = [], []
    try:
        for index in range(2):
            port = _free_port()
            log = open(tmp_path / f"api-{index}.log", "wb")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--host", "127.0.0.1",
                 "--port", str(port), "--log-level", "warning", "--no-proxy-headers"],
                cwd=PROJECT_ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_for(lambda: _healthy(url), 60, f"{url} to start")
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=20)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_fourth_stream_is_refused_until_one_closes(client, world, servers):
    path = f"/api/v1/submissions/{submit(client, world)['submission_id']}/events"
    alice, bob = world.headers("alice"), world.headers("bob")
    bob_path = f"/api/v1/submissions/{submit(client, world, 'bob')['submission_id']}/events"
    with httpx.Client(timeout=10) as http, contextlib.ExitStack() as streams:
        opened = []
        for index in range(3):  # spread over both servers: the limit is shared
            stream = streams.enter_context(http.stream("GET", servers[index % 2] + path, headers=alice))
            assert stream.status_code == 200
            opened.append(stream)
        refused = http.get(servers[1] + path, headers=alice)
        assert refused.status_code == 429 and "3 live progress streams" in refused.json()["detail"]
        # When to try again: from the run's estimated start, within 2-10 s (a slot frees when an earlier run ends).
        assert 2 <= int(refused.headers["Retry-After"]) <= 10
        with http.stream("GET", servers[0] + bob_path, headers=bob) as other_user:
            assert other_user.status_code == 200
        opened[0].close()

        def reopened() -> bool:
            response = http.send(http.build_request("GET", servers[1] + path, headers=alice), stream=True)
            if response.status_code == 200:
                streams.callback(response.close)
                return True
            response.close()
            return False

        started = time.monotonic()
        wait_for(reopened, 15, "a closed stream to give its place back")
        assert time.monotonic() - started < 15


def test_a_finished_submissions_stream_needs_no_slot(client, world, servers):
    """Its stream is one poll and `done`: refusing it would leave the client waiting for a slot to learn the grade."""
    from tests.api.test_api_endpoints import _finish_run

    path = f"/api/v1/submissions/{submit(client, world)['submission_id']}/events"
    finished = submit(client, world)
    _finish_run(finished["run_id"], 61.5)
    alice = world.headers("alice")
    with httpx.Client(timeout=10) as http, contextlib.ExitStack() as streams:
        for _ in range(3):
            assert streams.enter_context(http.stream("GET", servers[0] + path, headers=alice)).status_code == 200
        assert http.get(servers[1] + path, headers=alice).status_code == 429
        answer = http.get(f"{servers[1]}{finished['status_url']}/events", headers=alice)
        assert answer.status_code == 200 and "event: done" in answer.text
        assert json.loads(answer.text.split("event: done")[1].split("data: ", 1)[1].splitlines()[0])["score"] == 61.5


def test_a_refused_stream_costs_one_transaction(client, world):
    """The slots are read and the refusal decided in the request's own transaction (a refused client tries again
    every few seconds: each try cost three)."""
    from sqlalchemy import event, select

    from grader.store import stream_slots
    from grader.store.db import get_engine, session_scope
    from grader.store.models import User

    path = f"/api/v1/submissions/{submit(client, world)['submission_id']}/events"
    with session_scope() as db:
        alice_id = db.scalar(select(User.id).where(User.email == "alice@example.edu"))
    assert all(stream_slots.acquire(alice_id, 3) is not None for _ in range(3))
    begun = []
    listener = lambda connection: begun.append(connection)  # noqa: E731
    event.listen(get_engine(), "begin", listener)
    try:
        refused = client.get(path, headers=world.headers("alice"))
    finally:
        event.remove(get_engine(), "begin", listener)
    assert refused.status_code == 429 and 2 <= int(refused.headers["Retry-After"]) <= 10
    assert len(begun) == 1
