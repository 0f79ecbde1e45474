"""A stopped worker removes its job's sandbox container at once and puts the run back in its queue (issue 11).

The real worker (`python -m grader.worker`), Redis, Postgres and Docker engine. SIGTERM goes to the worker's main
process only (as `docker stop` sends it) or to its whole process group; the job's submission ignores SIGALRM and
sleeps at import, so left alone its container would live until the correctness stage's wall clock.
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
from tests.factories import good_source
from tests.service_fixtures import submit, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ENDLESS = b"import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\ntime.sleep(600)\n"
GONE_WITHIN_SECONDS = 8


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[1])


def containers_of(client, worker_pid: int) -> list:
    """Running job containers started by one of the worker's pool processes."""
    found = []
    # sparse: the listing's own data, so a container someone removes meanwhile is simply not there
    for container in client.containers.list(sparse=True, filters={"label": [f"{JOB_LABEL}=1",
                                                                            f"{HOST_LABEL}={os.uname()[1]}"]}):
        pid = int((container.attrs.get("Labels") or {}).get(WORKER_PID_LABEL, "0"))
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
    wait_for(lambda: not [c for c in engine.containers.list(all=True, sparse=True) if c.id in ids], GONE_WITHIN_SECONDS,
             "the container to be removed", interval=0.2)
    assert time.monotonic() - stopped < GONE_WITHIN_SECONDS
    worker.process.wait(30)
    with session_scope() as db:
        run = db.get(GradingRun, accepted["run_id"])
        assert run.status == "queued" and "queued again" in run.message
        assert run.score is None


def test_a_stopped_worker_leaves_no_waiting_container_either(client, world, start_worker):
    engine = docker.from_env()
    worker = start_worker(queues="correctness", beat=False, name="warm")
    quick = submit(client, world, source=good_source("warm-1"))
    wait_for(lambda: db_status(quick["run_id"]) == "graded", 180, "the first run to be graded")
    pool_pids = {int(pid) for pid in os.listdir("/proc")
                 if pid.isdigit() and pid_is_child(int(pid), worker.process.pid)}

    def labelled() -> list:
        return [c for c in engine.containers.list(all=True, sparse=True, filters={"label": f"{JOB_LABEL}=1"})
                if int((c.attrs.get("Labels") or {}).get(WORKER_PID_LABEL, "0")) in pool_pids]

    # After its first correctness job the pool process keeps one container started ahead (the default setting).
    wait_for(labelled, 60, "the container started ahead for the next job")
    os.kill(worker.process.pid, signal.SIGTERM)
    wait_for(lambda: not labelled(), GONE_WITHIN_SECONDS, "the waiting container to be removed", interval=0.2)
    worker.process.wait(30)


def db_status(run_id: int) -> str:
    with session_scope() as db:
        return db.get(GradingRun, run_id).status


def pid_is_child(pid: int, parent: int) -> bool:
    try:
        return parent_of(pid) == parent
    except (OSError, ValueError, IndexError):
        return False
