"""The students of a burst waiting for their feedback the way `grader submit` waits (grader/commands/submit.py).

Each accepted upload gets a follower thread that does what the product's client does after its upload: follow the
submission's Server-Sent Events stream until `done`, whose data is the finished submission (a quiet stream times out
after the client's STREAM_IDLE_SECONDS, and the follower reconnects); when the server refuses a stream (a student
may hold LIVE_STREAMS_PER_USER at once: the fourth is a 429), try the stream again after the 429's Retry-After.
The follower records when it saw the finished status: the feedback latency a student sees, which includes how late
the server tells them.

Followers use http.client (one connection each: a stream holds its connection) for the reason bench/light_client.py
gives: they stand for students' machines but run on the service's two cores.
"""

from __future__ import annotations

import http.client
import threading
import time
from urllib.parse import urlsplit

from grader.commands.submit import (CONNECT_TIMEOUT_SECONDS, FINISHED_STATUSES, POLL_INTERVAL_SECONDS,
                                    STREAM_IDLE_SECONDS, parse_sse, retry_seconds)


class Follower:
    """One student's client waiting for one submission's grade."""

    def __init__(self, base_url: str, status_url: str, token: str, posted_at: float):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.status_url, self.posted_at = status_url, posted_at
        self.headers = {"Authorization": f"Bearer {token}"}
        self.streams_opened = self.streams_refused = 0
        self.seen_at: float | None = None
        self.final_status = ""
        self.error = ""

    def run(self, deadline: float) -> None:
        try:
            self._follow(deadline)
        except Exception as exc:  # noqa: BLE001  (recorded and reported: a follower must not die silently)
            self.error = f"{type(exc).__name__}: {exc}"

    def _follow(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            status, wait = self._follow_stream()
            if status in FINISHED_STATUSES:
                self.seen_at, self.final_status = time.perf_counter(), status
                return
            time.sleep(wait)
        self.error = "still waiting at the deadline"

    def _follow_stream(self) -> tuple[str, float]:
        """Reads the event stream until `done` or a quiet spell: (the status `done` carried or "", seconds to wait
        before following again: a refused stream's Retry-After)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            connection.connect()
            connection.sock.settimeout(STREAM_IDLE_SECONDS)  # connected: from now on, how long a quiet spell lasts
            connection.request("GET", f"{self.status_url}/events",
                               headers={**self.headers, "Accept": "text/event-stream"})
            response = connection.getresponse()
            if response.status == 429:
                response.read()
                self.streams_refused += 1
                return "", retry_seconds(response.getheader("Retry-After", ""), 1)
            if response.status != 200:
                raise RuntimeError(f"the stream answered {response.status}: {response.read()[:200]!r}")
            self.streams_opened += 1
            status = _done_status(response)  # a `done` before the grade (no run yet): ask again, not at once
            return status, POLL_INTERVAL_SECONDS if status else 0.0
        except TimeoutError:
            return "", 0.0  # a quiet stream: reconnect, as the client does
        finally:
            connection.close()


def _done_status(response: http.client.HTTPResponse) -> str:
    """The status in the `done` event's data, read as the client reads the stream; "" when it ended without one."""
    lines = (line.decode("utf-8").rstrip("\n") for line in iter(response.readline, b""))
    for event, data, _ in parse_sse(lines):
        if event == "done":
            return str(data.get("status", ""))
    return ""


class Followers:
    """Follower threads started as uploads are accepted; `join` waits for all of them."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.followers: list[Follower] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.deadline = float("inf")

    def start(self, status_url: str, token: str, posted_at: float, timeout: float) -> None:
        follower = Follower(self.base_url, status_url, token, posted_at)
        thread = threading.Thread(target=follower.run, args=(time.monotonic() + timeout,), daemon=True)
        with self.lock:
            self.followers.append(follower)
            self.threads.append(thread)
        thread.start()

    def join(self, timeout: float) -> list[Follower]:
        deadline = time.monotonic() + timeout
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return list(self.followers)


def figures(followers: list[Follower]) -> dict:
    """What the followers saw: latency from posting to seeing the grade, and how they waited."""
    from bench.service_stack import summary

    seen = [follower.seen_at - follower.posted_at for follower in followers if follower.seen_at is not None]
    return {"feedback_seen_by_student": summary(seen),
            "followers": len(followers),
            "saw_grade": len(seen),
            "errors": sorted({follower.error for follower in followers if follower.error})[:5],
            "streams_opened": sum(follower.streams_opened for follower in followers),
            "streams_refused_retried_later": sum(follower.streams_refused for follower in followers)}
