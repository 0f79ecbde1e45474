"""`grader submit`: upload spatial.py to the course server, follow the run live, print the feedback.

Exit codes: 0 when the score reaches the assignment's pass mark, 1 when it does not, 2 on usage or
connection errors (unreadable file, unreachable server, bad token, unknown assignment, refused upload).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, TextIO
from urllib.parse import quote

import httpx

EXIT_PASSED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
FINISHED_STATUSES = {"graded", "error", "timeout"}
DEFAULT_SERVER = "http://127.0.0.1:8000"
POLL_INTERVAL_SECONDS = 2.0  # between status reads when the server has no event stream, and after a dropped one
CONNECT_TIMEOUT_SECONDS = 10.0
# The event stream may stay quiet for a while (a queued run, a long epoch); after this long without a byte
# the client re-reads the status and reconnects, so a silently dropped connection never hangs CI.
STREAM_IDLE_SECONDS = 30.0


class SubmitError(Exception):
    """A usage or connection problem: the message is shown to the student and the exit code is 2."""


DESCRIPTION = ("Upload spatial.py, follow the grading live, print feedback. "
               "Exit 0 when the score reaches the pass mark, 1 when not, 2 on usage or connection errors.")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit", help="upload spatial.py to the course server and wait for the grade", description=DESCRIPTION)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="your spatial.py")
    parser.add_argument("--assignment", required=True, help="assignment slug, e.g. cnn-spatial")
    parser.add_argument("--server", default=None, help="course server URL (default: $GRADER_SERVER)")
    parser.add_argument("--token", default=None, help="your API token (default: $GRADER_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print only the result object as JSON")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the grade (default 3600)")
    parser.add_argument("--repo", default=None, help="repository URL recorded with the submission (default: from CI)")
    parser.add_argument("--commit", default=None, help="commit SHA recorded with the submission (default: from CI)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # --json keeps stdout machine-readable: progress and messages go to stderr then.
    out = sys.stderr if args.json else sys.stdout
    try:
        server = (args.server or os.environ.get("GRADER_SERVER") or DEFAULT_SERVER).rstrip("/")
        token = args.token or os.environ.get("GRADER_TOKEN") or ""
        if not token:
            raise SubmitError("no API token: pass --token or set GRADER_TOKEN (your instructor sent you one)")
        source = _read_submission(args.file)
        repo, commit = _source_metadata(args.repo, args.commit)
        slug = quote(args.assignment, safe="")
        with _client(server, token) as client:
            assignment = _get_json(client, f"/api/v1/assignments/{slug}", what="the assignment")
            accepted = _upload(client, slug, args.file.name, source, repo, commit)
            print(f"Submitted {args.file.name} to {args.assignment} (submission {accepted['submission_id']}).", file=out)
            display = ProgressDisplay(out)
            try:
                if accepted.get("queue_position"):
                    display.note(f"place in queue: {accepted['queue_position']}")
                status_url = accepted.get("status_url") or f"/api/v1/submissions/{accepted['submission_id']}"
                submission = follow(client, status_url, display, deadline=time.monotonic() + args.timeout)
            finally:
                display.close()
    except SubmitError as error:
        print(f"grader submit: {error}", file=sys.stderr)
        return EXIT_USAGE

    passed = reaches_pass_mark(submission, assignment)
    if args.json:
        result = submission.get("result")
        if result is None:
            result = {"status": submission.get("status"), "score": submission.get("score"),
                      "max_score": submission.get("max_score"), "message": "no result was produced"}
        print(json.dumps(result, indent=2))
    else:
        print(format_feedback(submission, assignment, passed), file=out)
    return EXIT_PASSED if passed else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: this file needs only httpx, so the server also hands it out as a script."""
    parser = argparse.ArgumentParser(prog="grader submit", description=DESCRIPTION)
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["submit"]:  # so that a `grader` shim around this file reads like the installed command
        argv = argv[1:]
    return run(parser.parse_args(argv))


def _read_submission(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SubmitError(f"cannot read {path}: {error.strerror or error}") from None
    if not data.strip():
        raise SubmitError(f"{path} is empty")
    return data


def _source_metadata(repo: str | None, commit: str | None) -> tuple[str | None, str | None]:
    """Repository URL and commit, taken from GitHub Actions' environment when not given."""
    if repo is None and os.environ.get("GITHUB_REPOSITORY"):
        repo = f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{os.environ['GITHUB_REPOSITORY']}"
    if commit is None:
        commit = os.environ.get("GITHUB_SHA") or None
    return repo, commit


def _client(server: str, token: str) -> httpx.Client:
    if not server.startswith(("http://", "https://")):
        raise SubmitError(f"server URL must start with http:// or https://, got {server!r}")
    return httpx.Client(
        base_url=server,
        headers={"Authorization": f"Bearer {token}", "User-Agent": "grader-submit"},
        timeout=httpx.Timeout(60.0, connect=CONNECT_TIMEOUT_SECONDS),
    )


def _error_message(response: httpx.Response) -> str:
    """The server's JSON error message (`detail` or `message`), else the status line."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            value = body.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
            if isinstance(value, list) and value:
                return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in value)
    return f"HTTP {response.status_code}"


RETRY_WINDOW_SECONDS = 300.0  # how long a briefly unavailable server (503, restarting) is waited for
RETRY_STATUSES = (502, 503, 504)


def _retry_wait(response: httpx.Response | None, attempt: int) -> float:
    return retry_seconds(response.headers.get("Retry-After", "") if response is not None else "", attempt)


def retry_seconds(retry_after: str, attempt: int) -> float:
    """Seconds to wait before asking again: the server's Retry-After (header text) when it gives one, else 2, 4, 8,
    ... 30 by attempt."""
    if retry_after.strip().isdigit():
        return min(60.0, max(1.0, float(retry_after)))
    return min(30.0, 2.0 ** attempt)


def _request(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request; while the server is briefly unavailable (503 with Retry-After, a restart refusing
    connections) it is asked again for up to RETRY_WINDOW_SECONDS."""
    give_up = time.monotonic() + RETRY_WINDOW_SECONDS
    for attempt in range(1, 1000):
        response, problem = None, ""
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise SubmitError(f"the server at {client.base_url} did not answer in time; try again later") from None
        except (httpx.ConnectError, httpx.RemoteProtocolError) as error:
            problem = f"cannot reach the server at {client.base_url} ({error.__class__.__name__}: {error})"
            if not getattr(client, "answered_before", False):
                raise SubmitError(problem) from None  # a wrong --server fails at once; only a restart is waited for
        except httpx.HTTPError as error:
            raise SubmitError(f"cannot reach the server at {client.base_url} ({error.__class__.__name__}: {error})") from None
        if response is not None:
            client.answered_before = True  # type: ignore[attr-defined]
        if response is not None and response.status_code not in RETRY_STATUSES:
            return response
        wait = _retry_wait(response, attempt)
        if time.monotonic() + wait > give_up:
            if response is not None:
                return response
            raise SubmitError(problem)
        reason = f"HTTP {response.status_code}" if response is not None else "no connection"
        print(f"grader submit: the server is briefly unavailable ({reason}); trying again in {wait:.0f} s",
              file=sys.stderr, flush=True)
        time.sleep(wait)
    raise SubmitError(f"the server at {client.base_url} stayed unavailable")


def _raise_for_status(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    message = _error_message(response)
    if response.status_code == 401:
        raise SubmitError(f"the server refused your token ({message}); check GRADER_TOKEN or ask for a new token")
    if response.status_code == 403:
        raise SubmitError(f"not allowed to access {what} ({message})")
    if response.status_code == 404:
        raise SubmitError(f"{what} was not found ({message}); check the --assignment slug")
    if response.status_code == 413:
        raise SubmitError(f"the file is too large ({message})")
    if response.status_code == 429:
        raise SubmitError(f"daily submission limit reached ({message})")
    raise SubmitError(f"the server refused the request for {what}: {message} (HTTP {response.status_code})")


def _get_json(client: httpx.Client, url: str, *, what: str) -> dict[str, Any]:
    response = _request(client, "GET", url)
    _raise_for_status(response, what)
    try:
        return response.json()
    except ValueError:
        raise SubmitError(f"the server sent an unreadable answer for {what} (is --server the grader's URL?)") from None


def _upload(client: httpx.Client, slug: str, filename: str, source: bytes,
            repo: str | None, commit: str | None) -> dict[str, Any]:
    form = {key: value for key, value in (("repo", repo), ("commit", commit)) if value}
    response = _request(client, "POST", f"/api/v1/assignments/{slug}/submissions",
                        files={"file": (filename, source, "text/x-python")}, data=form)
    _raise_for_status(response, f"assignment {slug!r}")
    try:
        return response.json()
    except ValueError:
        raise SubmitError("the server accepted the upload but sent an unreadable answer") from None


def follow(client: httpx.Client, status_url: str, display: "ProgressDisplay", *, deadline: float) -> dict[str, Any]:
    """Follow a submission until its run finishes, by event stream when the server offers one, else by polling.

    Straight from the upload to the stream: its first events are the status so far, and its `done` carries the
    finished submission, so a followed grade costs no status read. A refused stream (a student holds a few at once)
    is tried again when the server's Retry-After says."""
    stream_available, position, last = True, {}, {}
    while time.monotonic() < deadline:
        if stream_available:
            finished, wait, stream_available = _follow_events(client, f"{status_url}/events", display, deadline,
                                                              position)
        else:
            finished, wait = _read_status(client, status_url, display), POLL_INTERVAL_SECONDS
        if finished is not None and finished.get("status") in FINISHED_STATUSES:
            return finished if "result" in finished else _read_status(client, status_url, display)
        if finished is not None:  # a `done` before the grade (no run to follow yet): ask again, not at once
            wait = max(wait, POLL_INTERVAL_SECONDS)
        last = finished or position.get("status") or last
        time.sleep(min(wait, max(0.0, deadline - time.monotonic())))
    raise SubmitError(f"still {last.get('status', 'waiting')} after the --timeout; the grade will appear at "
                      f"{client.base_url}{status_url}")


def _read_status(client: httpx.Client, status_url: str, display: "ProgressDisplay") -> dict[str, Any]:
    submission = _get_json(client, status_url, what="the submission")
    display.status(submission)
    return submission


def _follow_events(client: httpx.Client, url: str, display: "ProgressDisplay", deadline: float,
                   position: dict[str, Any]) -> tuple[dict[str, Any] | None, float, bool]:
    """Show events until `done` or the stream ends: (the `done` data or None, seconds to wait before following
    again, whether the server offers a stream at all).

    `position` keeps the last event id across reconnections, so the server resumes after it (Last-Event-ID), and
    the last status seen."""
    timeout = httpx.Timeout(STREAM_IDLE_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    headers = {"Accept": "text/event-stream"}
    if position.get("last_event_id"):
        headers["Last-Event-ID"] = position["last_event_id"]
    try:
        with client.stream("GET", url, headers=headers, timeout=timeout) as response:
            if response.status_code == 429:
                display.note("live progress unavailable (your other submissions' streams are open); waiting")
                return None, _retry_wait(response, 1), True
            if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
                    "text/event-stream"):
                return None, 0.0, False
            return _show_events(response, display, deadline, position), 0.0, True
    except httpx.TimeoutException:
        return None, 0.0, True  # quiet stream: reconnect (a finished run's stream answers `done` at once)
    except httpx.HTTPError:
        return None, POLL_INTERVAL_SECONDS, True  # dropped connection: back off, then reconnect


def _show_events(response: httpx.Response, display: "ProgressDisplay", deadline: float,
                 position: dict[str, Any]) -> dict[str, Any] | None:
    """The events of one stream on the display; the `done` data when it came."""
    for event, data, event_id in parse_sse(response.iter_lines()):
        if event_id:
            position["last_event_id"] = event_id
        if event == "progress":
            display.progress(data)
        elif event == "status":
            display.status(data)
            position["status"] = data
        elif event == "done":
            display.status(data)
            return data
        if time.monotonic() >= deadline:
            return None
    return None


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Server-Sent Events as (event name, JSON data, event id); comments and non-JSON data are skipped."""
    event, data_lines, event_id = "message", [], ""
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if data_lines:
                try:
                    data = json.loads("\n".join(data_lines))
                except ValueError:
                    data = None
                if isinstance(data, dict):
                    yield event, data, event_id
            event, data_lines = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "id":
                event_id = value
            elif name == "data":
                data_lines.append(value)


@dataclass
class ProgressDisplay:
    """One live status line on a terminal; plain lines, printed only on change, elsewhere (CI logs)."""

    stream: TextIO
    live: bool = field(init=False)
    _last: str = field(init=False, default="")
    _width: int = field(init=False, default=0)
    _spinner: Iterator[str] = field(init=False, default_factory=lambda: itertools.cycle("|/-\\"))

    def __post_init__(self) -> None:
        self.live = bool(getattr(self.stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"

    def status(self, submission: dict[str, Any]) -> None:
        """A status read or a status event (`queued`, `running`, `stage_started`, `stage_finished`)."""
        if submission.get("type") == "stage_started":
            self._show(f"{submission.get('stage')}: started")
            return
        if submission.get("type") == "stage_finished":
            self._show(f"{submission.get('stage')}: finished ({submission.get('status')})")
            return
        status = submission.get("status", "")
        if status == "queued":
            parts = ["queued"]
            if submission.get("queue_position"):
                parts.append(f"position {submission['queue_position']}")
            if submission.get("estimated_start"):
                parts.append(f"estimated start {_clock(submission['estimated_start'])}")
            self._show(", ".join(parts))
        elif status == "running":
            self._show("running")
        elif status:
            self._show(status)

    def progress(self, event: dict[str, Any]) -> None:
        self._show(describe_progress(event))

    def note(self, text: str) -> None:
        self._show(text)

    def _show(self, text: str) -> None:
        if not text:
            return
        if self.live:
            line = f"{next(self._spinner)} {text}"
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.stream.flush()
        elif text != self._last:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = text

    def close(self) -> None:
        if self.live and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def describe_progress(event: dict[str, Any]) -> str:
    """One line for a progress event: stage, check or epoch, loss and accuracy when the event carries them."""
    parts = [str(event["stage"])] if event.get("stage") else []
    if event.get("epoch") is not None:
        epochs = event.get("epochs") or event.get("total_epochs")
        parts.append(f"epoch {event['epoch']}/{epochs}" if epochs else f"epoch {event['epoch']}")
        if event.get("batch") is not None and event.get("batches"):
            parts.append(f"batch {event['batch']}/{event['batches']}")
        for key, label in (("loss", "loss"), ("train_loss", "loss"), ("train_accuracy", "train accuracy"),
                           ("test_accuracy", "test accuracy")):
            value = event.get(key)
            if isinstance(value, (int, float)):
                parts.append(f"{label} {value:.1%}" if "accuracy" in key else f"{label} {value:.4g}")
        if isinstance(event.get("projected_s"), (int, float)) and isinstance(event.get("elapsed_s"), (int, float)):
            left = max(0.0, event["projected_s"] - event["elapsed_s"])
            parts.append(f"about {left / 60:.0f} min left")
    elif isinstance(event.get("done"), int) and event.get("total"):
        parts.append(f"check {min(event['done'] + 1, event['total'])}/{event['total']}")
        if isinstance(event.get("running"), str):
            parts.append(event["running"])
    elif event.get("message"):
        parts.append(str(event["message"]))
    return " | ".join(parts)


def pass_mark_of(assignment: dict[str, Any], max_score: float | None) -> float | None:
    """The pass mark in points; a mark given as a fraction (<= 1) of a larger maximum is scaled."""
    mark = assignment.get("pass_mark")
    if not isinstance(mark, (int, float)):
        return None
    top = max_score if max_score is not None else assignment.get("max_score")
    if isinstance(top, (int, float)) and 0 < mark <= 1 < top:
        return float(mark) * float(top)
    return float(mark)


def reaches_pass_mark(submission: dict[str, Any], assignment: dict[str, Any]) -> bool:
    if submission.get("status") != "graded":
        return False
    if isinstance(submission.get("passed"), bool):
        return submission["passed"]
    score = submission.get("score")
    if not isinstance(score, (int, float)):
        return False
    mark = pass_mark_of(assignment, submission.get("max_score"))
    if mark is None:
        top = submission.get("max_score")
        return isinstance(top, (int, float)) and score >= top
    return score >= mark - 1e-9


def format_feedback(submission: dict[str, Any], assignment: dict[str, Any], passed: bool) -> str:
    """Human-readable report: score against the pass mark, per-stage lines, every failed check's output."""
    result = submission.get("result") or {}
    status = submission.get("status")
    score, top = submission.get("score"), submission.get("max_score")
    lines = []
    mark = pass_mark_of(assignment, top)
    if status == "graded" and isinstance(score, (int, float)):
        verdict = "PASSED" if passed else "NOT PASSED"
        mark_text = f" (pass mark {_number(mark)})" if mark is not None else ""
        lines.append(f"Score: {_number(score)}/{_number(top)}{mark_text} - {verdict}")
    else:
        lines.append(f"Grading ended with status '{status}'.")
    stage_messages = [stage.get("message") for stage in result.get("stages", []) if stage.get("message")]
    for line in str(result.get("message") or "").splitlines():
        if line.strip() and not any(message in line for message in stage_messages):  # said below, per stage
            lines.append(line)
    for stage in result.get("stages", []):
        text = f"  {stage.get('name')}: {_number(stage.get('score'))}/{_number(stage.get('max_score'))} [{stage.get('status')}]"
        if stage.get("message"):
            text += f" {stage['message']}"
        lines.append(text)
    tests = result.get("tests", [])
    failed = [test for test in tests if test.get("status") != "passed"]
    if tests:
        lines.append(f"Checks: {len(tests) - len(failed)}/{len(tests)} passed")
    for test in failed:
        lines.append("")
        lines.append(f"x {test.get('name')} [{test.get('status')}]")
        output = (test.get("output") or "").rstrip()
        if output:
            lines.extend("    " + row for row in output.splitlines())
    if submission.get("late"):
        lines.append("")
        earned = submission.get("earned_score")
        if isinstance(earned, (int, float)) and isinstance(score, (int, float)) and earned != score:
            lines.append(f"Note: this submission was uploaded {submission.get('late_days')} day(s) after the due "
                         f"date; it earned {_number(earned)}, and the late policy counts {_number(score)}.")
        else:
            lines.append("Note: this submission was uploaded after the due date.")
    return "\n".join(lines)


def _clock(moment: str) -> str:
    """`23:06:02 UTC` from an ISO timestamp; the text itself when it is not one."""
    try:
        parsed = datetime.fromisoformat(str(moment).replace("Z", "+00:00"))
    except ValueError:
        return str(moment)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc)
    return f"{parsed:%H:%M:%S} UTC"


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
