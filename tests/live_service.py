"""A fresh migrated Postgres database, environment switching, and a live service (uvicorn + Celery worker as
subprocesses), shared by the dashboard, CLI and browser tests. Rows come from tests/factories.py.

The database is real Postgres (127.0.0.1:5432, as on these machines; POSTGRES_ADMIN_URL overrides): each test
session gets its own freshly created database, migrated by Alembic, dropped at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import redis
from sqlalchemy import text

from grader.settings import PROJECT_ROOT, get_settings
from grader.store.db import get_sessionmaker, reset_engine
from grader.store.migrate import upgrade_head

ADMIN_URL = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_SECRET_KEY = "live-test-secret-" + "x" * 32
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True)


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, migrated Postgres database; its URL is yielded and it is dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    with _admin_connection() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        upgrade_head(url)
        yield url
    finally:
        reset_engine()
        with _admin_connection() as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables (and re-read settings, re-create the engine) for the block."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    get_settings.cache_clear()
    reset_engine()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        reset_engine()


def truncate_all() -> None:
    with get_sessionmaker()() as db:
        tables = db.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                 "AND tablename <> 'alembic_version'")).scalars().all()
        db.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        db.commit()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveService:
    base_url: str
    env: dict[str, str]
    processes: list[subprocess.Popen]
    log_dir: Path


@contextlib.contextmanager
def live_service(database_url: str, log_dir: Path, *, broker_db: int | None = None) -> Iterator[LiveService]:
    """uvicorn serving create_app() and a Celery worker on both queues, against `database_url` and Redis.

    Redis databases 11 (tests/grader/commands) and 12 (tests/api/web/browser) are ours; tests/service_fixtures.py
    uses 13, bench.service_load 14."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "BROKER_URL": f"redis://127.0.0.1:6379/{broker_db if broker_db is not None else int(os.environ.get('TEST_REDIS_WEB_DB', '11'))}",
           "SECRET_KEY": TEST_SECRET_KEY, "ENVIRONMENT": "test", "API_BASE_URL": f"http://127.0.0.1:{port}",
           "PYTHONUNBUFFERED": "1"}
    # Messages left by an interrupted earlier run would name runs of another database: start empty.
    redis.Redis.from_url(env["BROKER_URL"]).flushdb()
    python = sys.executable
    commands = {
        "api": [python, "-m", "uvicorn", "--factory", "api.main:create_app", "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning"],
        "worker": [python, "-m", "grader.worker", "--queues", "correctness,training", "--concurrency", "1",
                   "--hostname", f"live-test-{port}@%h"],
    }
    processes = []
    try:
        for name, argv in commands.items():
            log = open(log_dir / f"{name}.log", "wb")
            processes.append(subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if processes[0].poll() is not None:
                raise RuntimeError(f"the API server exited: {(log_dir / 'api.log').read_text()[-2000:]}")
            try:
                if httpx.get(base_url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API server did not start within 60 s")
            time.sleep(0.3)
        yield LiveService(base_url=base_url, env=env, processes=processes, log_dir=log_dir)
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
