"""Real Celery workers (subprocesses) grading through the real sandbox: sandbox.select picks docker here (the
tests assert which backend graded), the store is the session's Postgres database and the broker Redis db 13."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select

from grader.store.db import session_scope
from grader.store.models import GradingRun, RunEvent, TestResultRow
from grader.tasks import publish
from tests.factories import good_source, make_world
from tests.fixtures.cifar10 import write_tiny_archive
from tests.service_fixtures import WorkerProcess, apply_environment, submit, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SLOW_IMPORT = "\nimport time as _time\n_time.sleep(4)  # keeps the job running long enough to interrupt it\n"


def _run(run_id: int) -> GradingRun:
    with session_scope() as db:
        return db.get(GradingRun, run_id)


def _finished(run_id: int) -> GradingRun | None:
    run = _run(run_id)
    return run if run.status in ("graded", "error", "timeout") else None


def _assert_graded_once(run_id: int, attempts: int) -> GradingRun:
    with session_scope() as db:
        run = db.get(GradingRun, run_id)
        assert run.status == "graded", run.result
        assert run.score == run.max_score > 0 and run.attempts == attempts and run.signature
        assert run.backend == "docker" and run.image_digest.startswith("sha256:")
        assert db.scalar(select(func.count(TestResultRow.id)).where(TestResultRow.run_id == run_id)) == len(
            run.result["tests"])
        assert db.scalar(select(func.count(RunEvent.id)).where(RunEvent.run_id == run_id,
                                                                RunEvent.type == "done")) == 1
        return run


def test_worker_grades_and_a_repeated_delivery_changes_nothing(client, world, start_worker):
    start_worker()
    accepted = submit(client, world)
    for _ in range(2):
        publish(accepted["run_id"], "correctness")  # duplicates of the message, as after a broker redelivery
    with client.stream("GET", f"{accepted['status_url']}/events", headers=world.headers("alice")) as stream:
        body = "".join(stream.iter_text())  # follows the live run until its `done` event
    assert '"status": "running"' in body and body.count("event: done") == 1
    done = json.loads(body.split("event: done")[1].split("data: ", 1)[1].split("\n", 1)[0])
    assert done["status"] == "graded"
    wait_for(lambda: _finished(accepted["run_id"]), 120, "the run to finish")
    time.sleep(3)  # give the duplicates time to be consumed
    _assert_graded_once(accepted["run_id"], attempts=1)
    view = client.get(accepted["status_url"], headers=world.headers("alice")).json()
    assert view["status"] == "graded" and view["passed"] is True
    with session_scope() as db:
        kinds = {event.type for event in db.scalars(select(RunEvent).where(RunEvent.run_id == accepted["run_id"]))}
    assert {"status", "done"} <= kinds


def test_worker_killed_mid_job_is_graded_exactly_once(client, world, start_worker):
    worker = start_worker(name="doomed")
    accepted = submit(client, world, source=good_source() + SLOW_IMPORT.encode())
    wait_for(lambda: _run(accepted["run_id"]).status == "running", 60, "the job to start", interval=0.05)
    worker.kill()
    assert _run(accepted["run_id"]).status == "running"
    start_worker(name="rescuer")  # removes the dead worker's container; the sweep re-queues the run
    wait_for(lambda: _finished(accepted["run_id"]), 180, "the re-queued run to finish")
    run = _assert_graded_once(accepted["run_id"], attempts=2)
    assert "stopped" in " ".join(e["reason"] for e in _status_events(run.id) if e.get("reason"))


def _status_events(run_id: int) -> list[dict]:
    with session_scope() as db:
        return [event.data for event in db.scalars(select(RunEvent).where(RunEvent.run_id == run_id,
                                                                          RunEvent.type == "status"))]


def test_embedded_default_mode(tmp_path, service_env):
    """No DATABASE_URL or BROKER_URL: SQLite file and filesystem broker under data_dir, same worker code."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from grader.store.migrate import upgrade_head

    embedded = {**service_env, "DATABASE_URL": "", "BROKER_URL": "", "DATA_DIR": str(tmp_path / "data")}
    try:
        apply_environment(embedded)
        upgrade_head()
        world = make_world()
        with TestClient(create_app()) as embedded_client:
            accepted = submit(embedded_client, world)
            process = WorkerProcess(embedded, tmp_path / "embedded-worker.log")
            try:
                process.wait_ready()
                wait_for(lambda: _finished(accepted["run_id"]), 120, "the embedded run to finish")
                _assert_graded_once(accepted["run_id"], attempts=1)
                assert (tmp_path / "data" / "grader.sqlite3").exists()
            finally:
                process.stop()
    finally:
        apply_environment(service_env)


QUICK_TRAINING = {"epochs": "1", "batch_size": "32", "max_batches_per_epoch": "3", "report_every_batches": "1",
                  "test_subset": "200", "probe": "{ warmup_batches = 1, batches = 1 }"}


def _quick_training_spec() -> str:
    """The default spec with a CIFAR-10 stage cut down to three batches (the real harness)."""
    from grader.assignment_spec import default_spec_toml

    lines, section = [], ""
    for line in default_spec_toml().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            lines.append(line)
            if section == "[stages.cifar10]":
                lines += [f"{key} = {value}" for key, value in QUICK_TRAINING.items()]
            continue
        if section == "[stages.cifar10]" and stripped.split("=")[0].strip() in QUICK_TRAINING:
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def test_correctness_then_training_queue(client, clean_db, start_worker, monkeypatch, tmp_path):
    """Correctness in the fast queue, then the same run moves to the training queue and trains in the sandbox.

    The worker prepares and trains on a tiny CIFAR-10 look-alike, so the test needs no copy of the real data set
    wherever the checkout lives (the real one is exercised by `make bench`)."""
    monkeypatch.setenv("CIFAR10_SOURCE", str(write_tiny_archive(tmp_path / "tiny-cifar10.tar.gz")))
    monkeypatch.setenv("CIFAR10_CACHE_DIR", str(tmp_path / "cifar10-cache"))
    world = make_world(spec_toml=_quick_training_spec(), stages=["correctness", "cifar10"])
    start_worker()
    accepted = submit(client, world)
    run = wait_for(lambda: _finished(accepted["run_id"]), 600, "correctness and training to finish", interval=1)
    assert run.status == "graded", run.result
    assert [s["name"] for s in run.result["stages"]] == ["correctness", "cifar10"]
    assert run.result["stages"][1]["status"] == "graded" and set(run.stage_seconds) == {"correctness", "cifar10"}
    assert run.queue == "training" and run.max_score == world_max(world)
    with session_scope() as db:
        stages = {event.data.get("stage") for event in db.scalars(select(RunEvent).where(
            RunEvent.run_id == run.id, RunEvent.type == "progress"))}
    assert "cifar10" in stages  # training progress was stored while it ran
    _assert_signed_once(run.id)


def world_max(world) -> float:
    from grader.store.models import Assignment

    with session_scope() as db:
        return db.scalar(select(Assignment.max_score).where(Assignment.slug == world.assignment))


def _assert_signed_once(run_id: int) -> None:
    from grader.store.signing import verify_run

    with session_scope() as db:
        run = db.get(GradingRun, run_id)
        assert verify_run(run)
        assert db.scalar(select(func.count(RunEvent.id)).where(RunEvent.run_id == run_id,
                                                                RunEvent.type == "done")) == 1
