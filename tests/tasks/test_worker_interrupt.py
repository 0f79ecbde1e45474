"""A stopped worker removes its job's sandbox container at once and puts the run back in its queue (issue 11).

The real worker (`python -m grader.worker`), Redis, Postgres and Docker engine. SIGTERM goes to the worker's main
process only (as `docker stop` sends it) or to its whole process group; the job's submission ignores SIGALRM and sleeps at import, so left alone
its container would live until the correctness stage's wall clock.
"""

from __future__ import annotations

import os
import signal
import time

import docker
import pytest

from grader.store.db import session_scope
from grader.store.models import GradingRun
from sandbox.docker_backend import HOST_LABEL, JOB_LABEL, WORKER_PID_LABEL
from tests.api.service_fixtures import submit, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ENDLESS = b"import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(600)\n"
GONE_WITHIN_SECONDS = 8


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def containers_of(client, worker_pid: int) -> list:
    """Running job containers started by one of the worker's pool processes."""
    found = []
    for container in client.containers.list(filters={"label": [f"{JOB_LABEL}=1", f"{HOST_LABEL}={os.uname()[1]}"]}):
        pid = int(container.labels.get(WORKER_PID_LABEL, "0"))
        try:
            if pid and parent_of(pid) == worker_pid:
                found.append(container)
        except OSError:
            continue
    return found


@pytest.mark.parametrize("whole_group", [False, True], ids=["main-process", "process-group"])
def test_a_stopped_worker_removes_its_container_at_once_and_requeues_the_run(client, world, start_worker, whole_group):
    engine = docker.from_env()
    worker = start_worker(queues="correctness", beat=False, name="stopped")
    accepted = submit(client, world, source=ENDLESS)
    running = wait_for(lambda: containers_of(engine, worker.process.pid), 120, "the job's container")
    time.sleep(1.0)
    # `docker stop` signals the main process only; a service manager or a terminal may signal the whole group.
    (os.killpg if whole_group else os.kill)(worker.process.pid, signal.SIGTERM)
    stopped = time.monotonic()
    ids = [container.id for container in running]
    wait_for(lambda: not [c for c in engine.containers.list(all=True) if c.id in ids], GONE_WITHIN_SECONDS,
             "the container to be removed", interval=0.2)
    assert time.monotonic() - stopped < GONE_WITHIN_SECONDS
    worker.process.wait(30)
    with session_scope() as db:
        run = db.get(GradingRun, accepted["run_id"])
        assert run.status == "queued" and "queued again" in run.message
        assert run.score is None
