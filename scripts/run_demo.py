"""`make run`: migrate, seed the demo course, start the API and the workers, print how to submit. Ctrl-C stops all.

Uses DATABASE_URL / BROKER_URL when set; otherwise an embedded SQLite store and a filesystem broker under
data_dir, so a fresh machine needs no servers.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request

from grader.settings import PROJECT_ROOT, get_settings
from grader.store.db import database_url, session_scope
from grader.store.migrate import upgrade_head
from grader.store.seed import seed_demo
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--no-workers", action="store_true", help="serve the API only")
    args = parser.parse_args(argv)

    settings = get_settings()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the children too, like Ctrl-C
    print(f"store:  {database_url().split('@')[-1]}", flush=True)
    print(f"broker: {broker_url().split('@')[-1]}", flush=True)
    upgrade_head()
    with session_scope() as db:
        demo = seed_demo(db)

    python = sys.executable
    processes = [_start([python, "-m", "uvicorn", "--factory", "api.main:create_app", "--host", args.host,
                         "--port", str(args.port), "--log-level", "warning"], "API")]
    if not args.no_workers:
        processes.append(_start([python, "-m", "grader.worker", "--queues", "correctness", "--beat",
                                 "--concurrency", str(settings.worker_concurrency), "--hostname",
                                 "correctness@%h"], "correctness worker"))
        processes.append(_start([python, "-m", "grader.worker", "--queues", "training", "--concurrency", "1",
                                 "--hostname", "training@%h"], "training worker"))
    url = f"http://{args.host}:{args.port}"
    try:
        if not _wait_healthy(url, 30):
            print("the API did not start; see the messages above", file=sys.stderr)
            return 1
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
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        print("a child process stopped; shutting down", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
        return 0
    finally:
        _stop(processes)


if __name__ == "__main__":
    sys.exit(main())
