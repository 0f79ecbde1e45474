"""bench/followers.py follows a submission as `grader submit` does: stream until `done` (whose data is the finished
submission), and when the stream is refused try it again after the 429's Retry-After; it records when the grade was
seen. A small stdlib server plays the API's side of that contract here (an event stream, a 429 for a refused stream)
so the follower's own logic is tested in isolation; bench.service_load runs the same followers against the real
API."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import followers
from bench.followers import Followers


class _Api(BaseHTTPRequestHandler):
    state = {"status": "queued", "stream_code": 200, "opened": 0, "retry_after": "1"}

    def do_GET(self):  # noqa: N802  (http.server's name)
        assert self.path.endswith("/events"), "a follower reads no status: the stream's `done` carries it"
        self.state["opened"] += 1
        if self.state["stream_code"] != 200 and self.state["status"] != "graded":
            self._refuse(self.state["stream_code"])
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'event: status\ndata: {"status": "queued"}\n\n')
        time.sleep(0.3)
        self.state["status"] = "graded"
        done = json.dumps({"status": "graded", "score": 1.0, "result": {}}).encode()
        self.wfile.write(b"event: status\ndata: {}\n\nevent: done\ndata: " + done + b"\n\n")

    def _refuse(self, code: int) -> None:
        body = b'{"detail": "too many streams"}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Retry-After", self.state["retry_after"])
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture()
def api():
    _Api.state.update(status="queued", stream_code=200, opened=0, retry_after="1")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_follower_streams_until_done_then_sees_the_grade(api):
    waiting = Followers(api)
    waiting.start("/api/v1/submissions/1", "token", time.perf_counter(), timeout=10)
    seen = followers.figures(waiting.join(timeout=10))
    assert seen["saw_grade"] == 1 and seen["errors"] == []
    assert seen["streams_opened"] == 1 and seen["streams_refused_retried_later"] == 0
    assert seen["feedback_seen_by_student"]["p50_s"] >= 0.3  # not before the server said done


def test_a_refused_stream_is_tried_again_after_its_retry_after(api):
    _Api.state["stream_code"] = 429
    waiting = Followers(api)
    started = time.perf_counter()
    waiting.start("/api/v1/submissions/1", "token", started, timeout=10)
    time.sleep(0.5)
    _Api.state["stream_code"] = 200  # a slot is free again
    seen = followers.figures(waiting.join(timeout=10))
    assert seen["saw_grade"] == 1 and seen["streams_refused_retried_later"] == 1 and seen["streams_opened"] == 1
    assert seen["feedback_seen_by_student"]["p50_s"] >= 1.0  # waited out the Retry-After, did not hammer


def test_a_done_without_a_finished_status_is_not_a_grade(api, monkeypatch):
    monkeypatch.setattr(followers, "_done_status", lambda response: (response.read(), "queued")[1])
    waiting = Followers(api)
    waiting.start("/api/v1/submissions/1", "token", time.perf_counter(), timeout=1.0)
    seen = followers.figures(waiting.join(timeout=5))
    assert seen["saw_grade"] == 0 and _Api.state["opened"] == 1  # waits before it asks again


def test_a_grade_never_seen_is_an_error_not_a_figure(api):
    _Api.state.update(stream_code=429, retry_after="x")  # no number: the client's 2 s
    waiting = Followers(api)
    waiting.start("/api/v1/submissions/1", "token", time.perf_counter(), timeout=0.3)
    seen = followers.figures(waiting.join(timeout=5))
    assert seen["saw_grade"] == 0 and seen["errors"] == ["still waiting at the deadline"]
