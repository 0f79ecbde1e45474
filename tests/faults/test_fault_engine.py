"""Fault test: the Docker engine stopped for 60 s during a burst of 20 uploads. Runs that meet the outage wait
(delayed, no score) and are graded when the engine returns: every submission graded exactly once with its full
score, none ended by the fault.

The engine here is a private dockerd (its own socket, data root, exec root, pid file; tests/faults/
private_servers.py): the shared engine serves every other checkout on this machine and is never stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.store.models import GradingRun, RunEvent
from tests.factories import good_source
from tests.service_fixtures import WorkerProcess, apply_environment, submit, wait_for
from tests.faults.private_servers import PrivateDockerd

pytestmark = [pytest.mark.docker, pytest.mark.slow]

UPLOADS = 20
OUTAGE_SECONDS = 60.0
# Shorter waits between retries than production's (10 s doubling to 10 min) so the test takes minutes.
BACKOFF_ENV = {"INFRASTRUCTURE_BACKOFF_SECONDS": "5", "INFRASTRUCTURE_BACKOFF_MAX_SECONDS": "20"}


@pytest.fixture
def private_engine(service_env, tmp_path):
    engine = PrivateDockerd()
    engine.start()
    env = {**service_env, **BACKOFF_ENV, "DOCKER_HOST": engine.host, "SANDBOX_BACKEND": "docker"}
    try:
        subprocess.run([sys.executable, "-m", "grader.cli", "sandbox", "ensure-image"], cwd=PROJECT_ROOT,
                       env={**os.environ, **env}, check=True, capture_output=True, timeout=600)
        apply_environment(env)
        yield engine, env
    finally:
        apply_environment(service_env)
        os.environ.pop("DOCKER_HOST", None)
        engine.destroy()


def _all_finished(run_ids: list[int]) -> bool:
    with session_scope() as db:
        return all(db.get(GradingRun, run_id).finished for run_id in run_ids)


def test_docker_engine_stopped_for_60_s_during_a_burst(client, world, private_engine, tmp_path):
    engine, env = private_engine
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="correctness", name="engine-fault")
    try:
        worker.wait_ready()
        run_ids = []
        for i in range(UPLOADS):
            run_ids.append(submit(client, world, "alice" if i % 2 else "bob", source=good_source(f"burst {i}"))["run_id"])
            if i == 4:
                engine.stop()
                stopped = time.monotonic()
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        with session_scope() as db:
            delayed = db.scalar(select(func.count(GradingRun.id)).where(GradingRun.delayed_since.is_not(None)))
        engine.start()
        wait_for(lambda: _all_finished(run_ids), 420, "every run to be graded after the engine came back",
                 interval=2.0)
    finally:
        worker.stop()
    assert delayed > 0, "no run met the outage"
    with session_scope() as db:
        faulted = 0
        for run_id in run_ids:
            run = db.get(GradingRun, run_id)
            assert run.status == "graded" and run.score == run.max_score > 0, (run_id, run.status, run.message)
            assert run.delayed_since is None and run.backend == "docker"
            assert db.scalar(select(func.count(RunEvent.id)).where(RunEvent.run_id == run_id,
                                                                    RunEvent.type == "done")) == 1
            faulted += run.infra_faults > 0
        assert faulted > 0
