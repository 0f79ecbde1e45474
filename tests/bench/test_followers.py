"""bench/followers.py follows a submission as `grader submit` does: stream until `done`, else poll; it records when
the grade was seen. A small stdlib server plays the API's side of that contract here (status JSON, an event stream,
a 429 for a refused stream) so the follower's own logic is tested in isolation; bench.service_load runs the same
followers against the real API."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import followers
from bench.followers import Followers


class _Api(BaseHTTPRequestHandler):
    state = {"status": "queued", "stream_code": 200, "reads": 0}

    def do_GET(self):  # noqa: N802  (http.server's name)
        if self.path.endswith("/events"):
            if self.state["stream_code"] != 200:
                self._send(self.state["stream_code"], b"{}", "application/json")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            time.sleep(0.3)
            self.state["status"] = "graded"
            self.wfile.write(b"event: status\ndata: {}\n\nevent: done\ndata: {}\n\n")
            return
        self.state["reads"] += 1
        self._send(200, json.dumps({"status": self.state["status"]}).encode(), "application/json")

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture()
def api():
    _Api.state.update(status="queued", stream_code=200, reads=0)
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
    assert seen["streams_opened"] == 1 and seen["streams_refused_polled_instead"] == 0
    assert seen["status_reads"] == 2  # before the stream, and after `done`
    assert seen["feedback_seen_by_student"]["p50_s"] >= 0.3  # not before the server said done


def test_a_refused_stream_falls_back_to_polling(api, monkeypatch):
    monkeypatch.setattr(followers, "POLL_INTERVAL_SECONDS", 0.1)
    _Api.state["stream_code"] = 429
    waiting = Followers(api)
    waiting.start("/api/v1/submissions/1", "token", time.perf_counter(), timeout=10)
    time.sleep(0.5)
    _Api.state["status"] = "graded"
    seen = followers.figures(waiting.join(timeout=10))
    assert seen["saw_grade"] == 1 and seen["streams_refused_polled_instead"] == 1
    assert seen["status_reads"] >= 3


def test_a_grade_never_seen_is_an_error_not_a_figure(api, monkeypatch):
    monkeypatch.setattr(followers, "POLL_INTERVAL_SECONDS", 0.05)
    _Api.state["stream_code"] = 429
    waiting = Followers(api)
    waiting.start("/api/v1/submissions/1", "token", time.perf_counter(), timeout=0.3)
    seen = followers.figures(waiting.join(timeout=5))
    assert seen["saw_grade"] == 0 and seen["errors"] == ["still waiting at the deadline"]
