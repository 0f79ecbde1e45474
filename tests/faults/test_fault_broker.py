"""Fault tests with the real broker and engine: a Redis restarted without persistence, a worker SIGKILLed mid-job.
Each ends with every submission graded exactly once and no score from a fault.

The Redis here is a private redis-server on its own port (tests/faults/private_servers.py): the shared one on
6379 serves every other checkout on this machine and is never stopped."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from grader.store.db import session_scope
from grader.store.models import GradingRun, RunEvent
from tests.factories import good_source
from tests.service_fixtures import WorkerProcess, apply_environment, submit, wait_for
from tests.faults.private_servers import PrivateRedis

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Production timings for the store side of recovery, so that only the new broker check (not a short deadline)
# can bring the runs back quickly: a queued run's own deadline is 10 minutes away.
PRODUCTION_RECOVERY_ENV = {"RUN_REQUEUE_QUEUED_SECONDS": "600", "SWEEP_INTERVAL_SECONDS": "20",
                           "BROKER_GRACE_SECONDS": "15"}
RUNS = 20
RECOVERY_LIMIT_SECONDS = 120.0


@pytest.fixture
def private_broker(service_env, tmp_path):
    """The service pointed at a private redis-server; the shared settings come back afterwards."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    env = {**service_env, **PRODUCTION_RECOVERY_ENV, "BROKER_URL": server.url}
    apply_environment(env)
    try:
        yield server, env
    finally:
        apply_environment({**service_env, "RUN_REQUEUE_QUEUED_SECONDS": "6", "SWEEP_INTERVAL_SECONDS": "2",
                           "BROKER_GRACE_SECONDS": "15"})
        server.stop()


def _graded_exactly_once(run_ids: list[int]) -> None:
    with session_scope() as db:
        for run_id in run_ids:
            run = db.get(GradingRun, run_id)
            assert run.status == "graded" and run.score == run.max_score > 0, (run_id, run.status, run.message)
            assert run.attempts == 1 and run.signature and run.delayed_since is None
            assert db.scalar(select(func.count(RunEvent.id)).where(RunEvent.run_id == run_id,
                                                                    RunEvent.type == "done")) == 1


def _all_finished(run_ids: list[int]) -> bool:
    with session_scope() as db:
        return all(db.get(GradingRun, run_id).finished for run_id in run_ids)


def test_redis_restarted_without_persistence_with_20_runs_queued(client, world, private_broker, tmp_path):
    server, env = private_broker
    run_ids = [submit(client, world, source=good_source(f"queued {i}"))["run_id"] for i in range(RUNS)]
    assert server.depth("correctness") == RUNS  # no worker yet: every run waits in the broker
    server.restart()  # without persistence: every message is gone, the store still has 20 queued runs
    assert server.depth("correctness") == 0
    restarted = time.monotonic()
    workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log", queues="correctness", beat=i == 0, name=f"w{i}")
               for i in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        wait_for(lambda: _all_finished(run_ids), RECOVERY_LIMIT_SECONDS - (time.monotonic() - restarted),
                 "every queued run to be graded after the restart", interval=1.0)
        took = time.monotonic() - restarted
    finally:
        for worker in workers:
            worker.stop()
    print(f"20 runs lost by the broker graded {took:.0f} s after its restart")
    assert took < RECOVERY_LIMIT_SECONDS
    _graded_exactly_once(run_ids)
