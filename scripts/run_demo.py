"""`make run`: migrate, seed the demo course, start the API and the workers, print how to submit. Ctrl-C stops all.

Uses DATABASE_URL / BROKER_URL when set; otherwise an embedded SQLite store and a filesystem broker under
data_dir, so a fresh machine needs no servers.

A newcomer's first minutes are measured and printed: the set-up (from the moment `make run` started, passed in
MAKE_STARTED as a Unix time, to the API answering) and the first grade (from the upload of the first submission
after start-up to its graded result, as the store recorded them).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request

from datetime import datetime, timezone

from sqlalchemy import select

from grader.settings import PROJECT_ROOT, get_settings
from grader.store.db import database_url, session_scope
from grader.store.models import GradingRun, Submission
from grader.store.migrate import upgrade_head
from grader.seed import seed_demo
from grader.tasks import broker_url

STOP_GRACE_SECONDS = 10.0  # a worker finishing its current job before it is killed; the sweep re-queues the rest


def _start(argv: list[str], name: str) -> subprocess.Popen:
    print(f"starting {name}: {' '.join(argv)}", flush=True)
    # Own process group, so stopping a worker also stops its pool processes.
    return subprocess.Popen(argv, cwd=PROJECT_ROOT, start_new_session=True)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _interrupt(*_args) -> None:
    raise KeyboardInterrupt


def _wait_healthy(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def _setup_seconds(now: float) -> float | None:
    """Seconds since `make run` started (MAKE_STARTED), or None when started some other way."""
    try:
        return now - float(os.environ["MAKE_STARTED"])
    except (KeyError, ValueError):
        return None


class FirstGrade:
    """Watches the store for the first submission uploaded after start-up and reports once it has a final result."""

    def __init__(self, since: datetime) -> None:
        self.since = since
        self.reported = False

    def poll(self) -> str | None:
        """The report line, once, when the first submission's first run has finished; else None."""
        if self.reported:
            return None
        with session_scope() as db:
            submission = db.scalar(select(Submission).where(Submission.created_at >= self.since)
                                   .order_by(Submission.id).limit(1))
            if submission is None:
                return None
            run = db.scalar(select(GradingRun).where(GradingRun.submission_id == submission.id,
                                                     GradingRun.finished_at.is_not(None))
                            .order_by(GradingRun.id).limit(1))
            if run is None:
                return None
            seconds = (run.finished_at - submission.created_at).total_seconds()
            score = f", score {run.score:g}/{run.max_score:g}" if run.score is not None else ""
            self.reported = True
            return (f"first grade: submission {submission.id} went from upload to a {run.status} result in "
                    f"{seconds:.2f} s{score}")


def _start_services(args: argparse.Namespace, settings) -> list[subprocess.Popen]:
    """Start the API and, unless --no-workers, the correctness and training workers."""
    python = sys.executable
    processes = [_start([python, "-m", "uvicorn", "--factory", "api.main:create_app", "--host", args.host,
                         "--port", str(args.port), "--log-level", "warning",
                         # X-Forwarded-For is judged by the TRUSTED_PROXIES setting, not by uvicorn
                         "--no-proxy-headers"], "API")]
    if not args.no_workers:
        processes.append(_start([python, "-m", "grader.worker", "--queues", "correctness", "--beat",
                                 "--concurrency", str(settings.worker_concurrency), "--hostname",
                                 "correctness@%h"], "correctness worker"))
        processes.append(_start([python, "-m", "grader.worker", "--queues", "training", "--concurrency", "1",
                                 "--hostname", "training@%h"], "training worker"))
    return processes


def _print_instructions(url: str, demo) -> None:
    """Print the demo's logins, tokens and the commands that submit and follow a file."""
    sample = PROJECT_ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
    print(f"""
The autograder is running at {url}   (API docs: {url}/api/docs, dashboard: {url}/)

  instructor login:  {demo.instructor_email} / {demo.instructor_password}
  instructor token:  {demo.instructor_token}
  student token:     {demo.student_token}

Submit the demo's correct file (correctness only, graded in seconds):

  curl -sS -H 'Authorization: Bearer {demo.student_token}' -F file=@{sample} \\
       {url}/api/v1/assignments/{demo.quick_assignment}/submissions

then follow it with the status_url it returns, e.g.

  curl -sS -H 'Authorization: Bearer {demo.student_token}' {url}/api/v1/submissions/1

The full assignment (correctness, then CIFAR-10 training in the slow queue) is `{demo.full_assignment}`.
Press Ctrl-C to stop.
""", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-workers", action="store_true", help="serve the API only")
    args = parser.parse_args(argv)

    settings = get_settings()
    started_at = datetime.now(timezone.utc)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the children too, like Ctrl-C
    # Ctrl-C stops the demo even when it was started from a background job, which starts with SIGINT ignored
    # (Python then installs no KeyboardInterrupt handler of its own).
    signal.signal(signal.SIGINT, _interrupt)
    print(f"store:  {database_url().split('@')[-1]}", flush=True)
    print(f"broker: {broker_url().split('@')[-1]}", flush=True)
    upgrade_head()
    with session_scope() as db:
        demo = seed_demo(db)

    processes = _start_services(args, settings)
    url = f"http://{args.host}:{args.port}"
    try:
        if not _wait_healthy(url, 30):
            print("the API did not start; see the messages above", file=sys.stderr)
            return 1
        setup = _setup_seconds(time.time())
        _print_instructions(url, demo)
        if setup is not None:
            print(f"set-up took {setup:.1f} s (from `make run` to the demo answering at {url})", flush=True)
        first_grade = FirstGrade(started_at)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
            report = first_grade.poll()
            if report:
                print(report, flush=True)
        print("a child process stopped; shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        _stop(processes)


if __name__ == "__main__":
    sys.exit(main())
