"""An interrupted `grader grade` removes its sandbox at once, not at the job's wall-clock limit (issue 11).

The submission ignores SIGALRM (so the harness's per-case limits cannot stop it) and sleeps at import: left
alone, its job would live until the correctness stage's wall clock (60 s or more). The real engine, the real CLI.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from sandbox.docker_backend import JOB_LABEL, WORKER_PID_LABEL
from sandbox.interrupts import terminate_children
from tests.sandbox.helpers import host_processes_with

ROOT = Path(__file__).resolve().parents[2]
SLOW = ("import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(600)\n"
        "class Conv2D:\n    pass\n")
# Start-up of the CLI on a loaded 2-core machine (imports, reference outputs, container start).
START_TIMEOUT_SECONDS = 120
# How soon after the signal nothing of the job may remain.
GONE_WITHIN_SECONDS = 8


def start_grading(tmp_path: Path, backend: str) -> subprocess.Popen:
    submission = tmp_path / "spatial.py"
    submission.write_text(SLOW)
    return subprocess.Popen([sys.executable, "-m", "grader.cli", "grade", str(submission), "--stages", "correctness",
                             "--sandbox", backend], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(condition, timeout_seconds: float, process: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


@pytest.mark.docker
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_interrupted_grade_removes_its_container_at_once(tmp_path, signum):
    client = docker.from_env()
    process = start_grading(tmp_path, "docker")
    labels = {"label": [f"{JOB_LABEL}=1", f"{WORKER_PID_LABEL}={process.pid}"]}

    def running() -> list:
        return client.containers.list(sparse=True, filters={**labels, "status": "running"})

    try:
        assert wait_for(lambda: running(), START_TIMEOUT_SECONDS, process), process.communicate(timeout=30)
        time.sleep(1.0)  # well inside the job: the harness is sleeping in the student's import
        process.send_signal(signum)
        assert wait_for(lambda: not client.containers.list(all=True, sparse=True, filters=labels), GONE_WITHIN_SECONDS)
        assert process.wait(GONE_WITHIN_SECONDS) == 128 + signum
        assert "sandbox was removed" in process.stderr.read()
    finally:
        stop(process)
        for container in client.containers.list(all=True, filters=labels):
            container.remove(force=True)


def test_interrupted_grade_ends_its_bwrap_sandbox_at_once(tmp_path):
    process = start_grading(tmp_path, "bwrap")
    marker = f"/{process.pid}-"  # the job directory <pid>-<uuid> is on bwrap's command line
    try:
        assert wait_for(lambda: host_processes_with(marker), START_TIMEOUT_SECONDS, process), \
            process.communicate(timeout=30)
        time.sleep(1.0)
        process.send_signal(signal.SIGTERM)
        assert wait_for(lambda: not host_processes_with(marker), GONE_WITHIN_SECONDS)
        assert process.wait(GONE_WITHIN_SECONDS) == 128 + signal.SIGTERM
    finally:
        stop(process)


TERMINATE_CHILDREN = """
import json, subprocess, sys, time
from sandbox.interrupts import terminate_children
sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
child = subprocess.Popen(sleep)
parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                           "print(subprocess.Popen(sys.argv[1:]).pid, flush=True); time.sleep(60)", *sleep],
                          stdout=subprocess.PIPE, text=True)
grandchild = int(parent.stdout.readline())
signalled = terminate_children()
codes = [child.wait(10), parent.wait(10)]
subprocess.run(["kill", "-9", str(grandchild)])
print(json.dumps({"signalled": sorted(signalled), "children": sorted([child.pid, parent.pid]),
                  "grandchild": grandchild, "codes": codes}))
"""


def test_terminate_children_reaches_the_direct_children_only():
    # In its own process: pytest's own children (other tests' services) must not be signalled.
    completed = subprocess.run([sys.executable, "-c", TERMINATE_CHILDREN], cwd=ROOT, capture_output=True, text=True,
                               timeout=60)
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["signalled"] == report["children"] and report["grandchild"] not in report["signalled"]
    assert report["codes"] == [-signal.SIGTERM, -signal.SIGTERM]
