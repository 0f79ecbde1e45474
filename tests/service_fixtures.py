"""Fixtures shared by the API, store, services and worker tests (imported by their conftest.py); rows come from
tests/factories.py.

Real servers: a fresh Postgres database per test session (`grader_test_<random>` on 127.0.0.1:5432, dropped at the
end), Redis database 13 (flushed), and Celery workers started as subprocesses. Tables are emptied before every test.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from grader.settings import PROJECT_ROOT, get_settings
from tests.factories import World, good_source, make_world
from tests.live_service import environment

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# A database number no one else uses on the shared Redis; TEST_REDIS_DB lets two checkouts test side by side.
REDIS_TEST_DB = int(os.environ.get("TEST_REDIS_DB", "13"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_TEST_DB}"
TABLES = ("run_events", "test_results", "grading_runs", "submissions", "badge_tokens", "assignments",
          "enrollments", "api_tokens", "courses", "users", "audit_log", "throttle_entries", "stream_slots")

# Short leases and sweeps so that recovery from a dead worker or a lost broker takes seconds in tests.
FAST_RECOVERY_ENV = {"RUN_LEASE_SECONDS": "4", "RUN_HEARTBEAT_SECONDS": "1", "SWEEP_INTERVAL_SECONDS": "2",
                     "RUN_REQUEUE_QUEUED_SECONDS": "6"}


def create_database() -> tuple[str, str]:
    name = f"grader_test_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def apply_environment(env: dict[str, str]) -> None:
    """Point settings, the engine and the Celery app at `env` (in this process)."""
    from grader import tasks
    from grader.store.db import reset_engine

    os.environ.update(env)
    get_settings.cache_clear()
    reset_engine()
    tasks.configure(tasks.celery_app)


@pytest.fixture(scope="session")
def service_env(tmp_path_factory) -> Iterator[dict[str, str]]:
    """Environment of the service under test: fresh Postgres database, Redis db 13, migrated schema."""
    import redis

    from grader.store.migrate import upgrade_head

    name, url = create_database()
    data_dir = tmp_path_factory.mktemp("service-data")
    env = {"DATABASE_URL": url, "BROKER_URL": REDIS_URL, "DATA_DIR": str(data_dir),
           "SECRET_KEY": "test-secret-" + secrets.token_hex(16), "ENVIRONMENT": "test", **FAST_RECOVERY_ENV}
    try:
        with environment(**env):  # restores the caller's variables, settings and engine afterwards
            apply_environment(env)  # and points the Celery app at the test broker
            redis.Redis.from_url(REDIS_URL).flushdb()
            upgrade_head()
            yield env
    finally:
        redis.Redis.from_url(REDIS_URL).flushdb()
        drop_database(name)


@pytest.fixture
def clean_db(service_env) -> Iterator[None]:
    """Empty tables (TRUNCATE bypasses the audit log's row triggers) and an empty test broker."""
    import redis

    from grader.store.db import get_engine

    apply_environment(service_env)
    with get_engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    redis.Redis.from_url(REDIS_URL).flushdb()
    yield


@pytest.fixture
def world(clean_db) -> World:
    return make_world()


@pytest.fixture
def client(clean_db):
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


def submit(client, world: World, who: str = "alice", source: bytes | None = None, **form) -> dict:
    response = client.post(f"/api/v1/assignments/{world.assignment}/submissions", headers=world.headers(who),
                           files={"file": ("spatial.py", source if source is not None else good_source())},
                           data=form)
    assert response.status_code == 202, response.text
    return response.json()


class WorkerProcess:
    """A real Celery worker (`python -m grader.worker`) in its own process group, logging to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, *, queues: str = "correctness,training",
                 beat: bool = True, name: str = "w") -> None:
        self.log_path = log_path
        argv = [sys.executable, "-m", "grader.worker", "--queues", queues, "--concurrency", "1",
                "--hostname", f"{name}-{secrets.token_hex(3)}@%h"] + (["--beat"] if beat else [])
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=self.log,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if b" ready." in self.log_path.read_bytes():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"worker did not start:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crashed machine would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def start_worker(service_env, tmp_path):
    """Start workers as needed; every one is stopped at the end of the test."""
    workers: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(service_env, tmp_path / f"worker-{len(workers)}.log", **kwargs)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(predicate, seconds: float, what: str, interval: float = 0.3):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")
