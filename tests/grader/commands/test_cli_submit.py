"""`grader submit` against a running server (uvicorn + Celery worker + sandbox): exit codes 0, 1 and 2."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from grader.commands.submit import (ProgressDisplay, describe_progress, format_feedback, parse_sse, pass_mark_of,
                                    reaches_pass_mark)
from grader.settings import PROJECT_ROOT

GOOD = PROJECT_ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
STUB = '''"""A first attempt: the layers exist but are not implemented yet."""


class Conv2D:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Conv2D is not written yet")


class MaxPool2D(Conv2D):
    pass


class AvgPool2D(Conv2D):
    pass


class Flatten(Conv2D):
    pass


class SimpleCNN(Conv2D):
    pass
'''


def _submit(service, *args: str, token: str | None = None, server: str | None = None, timeout: float = 240):
    live, seed = service
    env = {**os.environ, "GRADER_SERVER": server or live.base_url, "GRADER_TOKEN": token or seed.student_token}
    return subprocess.run([sys.executable, "-m", "grader.cli", "submit", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=PROJECT_ROOT)


@pytest.mark.docker
@pytest.mark.slow
def test_correct_file_passes_with_exit_0(service):
    result = _submit(service, str(GOOD), "--assignment", "cnn-spatial", "--commit", "abc123")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout and "Score: 61.5/61.5" in result.stdout
    assert "running" in result.stdout  # the run was followed live


@pytest.mark.docker
@pytest.mark.slow
def test_unfinished_file_fails_with_exit_1_and_feedback(service, tmp_path):
    stub = tmp_path / "spatial.py"
    stub.write_text(STUB)
    result = _submit(service, str(stub), "--assignment", "cnn-spatial")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NOT PASSED" in result.stdout
    assert "x conv2d." in result.stdout  # every failed check is listed with its feedback
    assert "NotImplementedError" in result.stdout or "not written yet" in result.stdout


@pytest.mark.docker
@pytest.mark.slow
def test_json_prints_only_the_result_object(service):
    result = _submit(service, str(GOOD), "--assignment", "cnn-spatial", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "graded" and data["score"] == data["max_score"] == 61.5
    assert {test["status"] for test in data["tests"]} == {"passed"}


def test_bad_token_exits_2_with_a_clear_message(service):
    result = _submit(service, str(GOOD), "--assignment", "cnn-spatial", token="gt_not-a-token")
    assert result.returncode == 2
    assert "refused your token" in result.stderr


def test_unknown_assignment_exits_2(service):
    result = _submit(service, str(GOOD), "--assignment", "no-such-thing")
    assert result.returncode == 2 and "not found" in result.stderr


def test_unreachable_server_exits_2(service):
    result = _submit(service, str(GOOD), "--assignment", "cnn-spatial", server="http://127.0.0.1:9")
    assert result.returncode == 2 and "cannot reach the server" in result.stderr


def test_usage_errors_exit_2(service, tmp_path):
    assert _submit(service, str(GOOD)).returncode == 2  # --assignment missing (argparse)
    missing = _submit(service, str(tmp_path / "nope.py"), "--assignment", "cnn-spatial")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    not_python = tmp_path / "spatial.py"
    not_python.write_bytes(b"def broken(:\n")
    refused = _submit(service, str(not_python), "--assignment", "cnn-spatial")
    assert refused.returncode == 2 and "does not parse" in refused.stderr


def test_parse_sse_events_ids_and_comments():
    lines = [": keep-alive", "", "id: 7", "event: progress", 'data: {"stage": "cifar10",', 'data: "epoch": 2}', "",
             "event: done", "data: not json", "", "event: done", 'data: {"status": "graded"}', ""]
    assert list(parse_sse(iter(lines))) == [("progress", {"stage": "cifar10", "epoch": 2}, "7"),
                                            ("done", {"status": "graded"}, "7")]  # the id persists, as in browsers


def test_progress_line_and_plain_output_off_a_terminal():
    # The shapes of grader/stages/training.py's batch events and grader/stages/correctness.py's check events.
    line = describe_progress({"stage": "cifar10", "epoch": 3, "epochs": 10, "batch": 40, "batches": 390,
                              "loss": 1.23456, "train_accuracy": 0.612, "elapsed_s": 300, "projected_s": 900})
    assert line == "cifar10 | epoch 3/10 | batch 40/390 | loss 1.235 | train accuracy 61.2% | about 10 min left"
    assert describe_progress({"stage": "correctness", "done": 4, "total": 63, "running": "conv2d.forward.k3"}) \
        == "correctness | check 5/63 | conv2d.forward.k3"
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    for text in ("queued", "queued", "running"):
        display.note(text)
    assert stream.getvalue() == "queued\nrunning\n"  # not a TTY: plain lines, repeats dropped


def test_pass_mark_in_points_or_as_a_fraction():
    assert pass_mark_of({"pass_mark": 46.125, "max_score": 61.5}, 61.5) == 46.125
    assert pass_mark_of({"pass_mark": 0.75, "max_score": 100}, 100) == 75
    assert reaches_pass_mark({"status": "graded", "score": 50, "max_score": 61.5}, {"pass_mark": 46.125})
    assert not reaches_pass_mark({"status": "graded", "score": 40, "max_score": 61.5}, {"pass_mark": 46.125})
    assert not reaches_pass_mark({"status": "error", "score": 61.5, "max_score": 61.5}, {"pass_mark": 1})


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    stream = _Terminal()
    display = ProgressDisplay(stream)
    display.progress({"stage": "cifar10", "epoch": 1, "epochs": 10, "loss": 2.0})
    display.progress({"stage": "cifar10", "epoch": 2, "epochs": 10, "loss": 1.5})
    display.close()
    output = stream.getvalue()
    assert "\n" not in output and output.count("\r") == 4  # two updates, then the line is wiped
    assert "epoch 2/10" in output and output.endswith("\r")


def test_late_feedback_names_what_was_earned_and_what_counts():
    submission = {"status": "graded", "score": 45.0, "earned_score": 50.0, "max_score": 61.5, "passed": False,
                  "late": True, "late_days": 1, "result": {"stages": [], "tests": []}}
    text = format_feedback(submission, {"pass_mark": 50.0, "max_score": 61.5}, passed=False)
    assert "Score: 45/61.5" in text and "1 day(s) after the due date; it earned 50" in text
    assert "counts 45" in text


def _fake_server(answers: dict[str, list], seen: list[str]):
    """An httpx client whose server answers each path from `answers` in turn (the last answer repeats); `seen`
    records the requests."""
    import httpx

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        queue = answers[request.url.path]
        code, headers, body = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(code, headers=headers, content=body.encode())

    return httpx.Client(base_url="http://grader.test", transport=httpx.MockTransport(handle))


SSE = {"content-type": "text/event-stream"}
FINISHED = {"id": 1, "status": "graded", "score": 61.5, "max_score": 61.5, "passed": True, "result": {"tests": []}}


def _follow(answers: dict[str, list], monkeypatch) -> tuple[dict, list[str], list[float]]:
    from grader.commands import submit

    seen, slept = [], []
    monkeypatch.setattr(submit.time, "sleep", slept.append)
    with _fake_server(answers, seen) as client:
        finished = submit.follow(client, "/api/v1/submissions/1", ProgressDisplay(io.StringIO()),
                                 deadline=submit.time.monotonic() + 30)
    return finished, seen, slept


def test_follow_goes_from_the_upload_to_the_stream_and_takes_the_grade_from_done(monkeypatch):
    stream = f'event: status\ndata: {{"status": "running"}}\n\nevent: done\ndata: {json.dumps(FINISHED)}\n\n'
    finished, seen, slept = _follow({"/api/v1/submissions/1/events": [(200, SSE, stream)]}, monkeypatch)
    assert finished == FINISHED and seen == ["/api/v1/submissions/1/events"] and slept == []  # no status read


def test_follow_tries_a_refused_stream_again_after_its_retry_after(monkeypatch):
    done = f"event: done\ndata: {json.dumps(FINISHED)}\n\n"
    refused = (429, {"Retry-After": "7"}, '{"detail": "You already have 3 live progress streams open."}')
    finished, seen, slept = _follow({"/api/v1/submissions/1/events": [refused, refused, (200, SSE, done)]},
                                    monkeypatch)
    assert finished == FINISHED and slept == [7.0, 7.0] and len(seen) == 3  # no status reads in between


def test_follow_reads_the_status_when_done_does_not_carry_the_submission(monkeypatch):
    """An older server's `done` had the status and score only: the feedback needs the result."""
    done = 'event: done\ndata: {"status": "graded", "score": 61.5}\n\n'
    finished, seen, _ = _follow({"/api/v1/submissions/1/events": [(200, SSE, done)],
                                 "/api/v1/submissions/1": [(200, {}, json.dumps(FINISHED))]}, monkeypatch)
    assert finished == FINISHED and seen == ["/api/v1/submissions/1/events", "/api/v1/submissions/1"]


def test_follow_polls_the_status_when_the_server_has_no_stream(monkeypatch):
    queued = json.dumps({"status": "queued", "queue_position": 2})
    finished, seen, slept = _follow({"/api/v1/submissions/1/events": [(404, {}, '{"detail": "no"}')],
                                     "/api/v1/submissions/1": [(200, {}, queued), (200, {}, json.dumps(FINISHED))]},
                                    monkeypatch)
    assert finished == FINISHED and seen == ["/api/v1/submissions/1/events"] + ["/api/v1/submissions/1"] * 2
    assert slept == [0.0, 2.0]
