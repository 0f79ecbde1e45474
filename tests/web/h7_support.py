"""Shared by tests/web, tests/cli and tests/browser: a fresh migrated Postgres database, factories, live servers.

The database is real Postgres (127.0.0.1:5432, as on these machines; POSTGRES_ADMIN_URL overrides): each test
session gets its own freshly created database, migrated by Alembic, dropped at the end.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from typing import Any

import httpx
import psycopg
import redis
from sqlalchemy import text

from grader.settings import PROJECT_ROOT, get_settings
from grader.store import credentials
from grader.assignment_spec import default_spec_toml, summarize_spec
from grader.store.db import get_sessionmaker, reset_engine
from grader.store.migrate import upgrade_head
from grader.store.models import (Assignment, Course, Enrollment, GradingRun, Submission, TestResultRow, User,
                                 utcnow)
from grader.store.signing import sign_run

ADMIN_URL = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_SECRET_KEY = "h7-test-secret-" + "x" * 32
INSTRUCTOR_EMAIL = "prof@example.edu"
INSTRUCTOR_PASSWORD = "correct horse battery staple"
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


# Factories


@dataclass
class Seed:
    """The ids and secrets of a seeded course (objects are re-read per session by id)."""

    instructor_id: int
    course_slug: str
    assignment_slug: str
    student_id: int
    student_token: str
    badge_token: str
    other_student_id: int
    other_student_token: str


def make_instructor(db, email: str = INSTRUCTOR_EMAIL, password: str = INSTRUCTOR_PASSWORD) -> User:
    user = User(email=email, name="Prof. Ada", role="instructor", password_hash=credentials.hash_password(password))
    db.add(user)
    db.flush()
    return user


def make_course(db, instructor: User, slug: str = "cnn101") -> Course:
    course = Course(slug=slug, title="Deep learning from scratch")
    db.add(course)
    db.flush()
    db.add(Enrollment(course_id=course.id, user_id=instructor.id, role="instructor"))
    return course


def make_assignment(db, course: Course, slug: str = "cnn-spatial", *, stages: list[str] | None = None,
                    due_at=None) -> Assignment:
    spec_toml = default_spec_toml()
    summary = summarize_spec(spec_toml, stages or ["correctness"])
    assignment = Assignment(course_id=course.id, slug=slug, title="Module 09: spatial.py", spec_toml=spec_toml,
                            spec=summary.parsed, spec_version=summary.version, due_at=due_at,
                            late_policy={"penalty_per_day": 0.1, "max_late_days": 3}, daily_submission_limit=50,
                            limits={}, stage_weights=summary.stage_weights, max_score=summary.max_score,
                            pass_mark=summary.pass_mark)
    db.add(assignment)
    db.flush()
    return assignment


def make_student(db, course: Course, email: str, name: str = "", number: str = "") -> tuple[User, str]:
    user = User(email=email, name=name, role="student")
    db.add(user)
    db.flush()
    db.add(Enrollment(course_id=course.id, user_id=user.id, role="student", student_number=number))
    return user, credentials.issue_api_token(db, user, "test")


def result_json(score: float, max_score: float, *, failed: int = 0, accuracy: float | None = None,
                status: str = "graded") -> dict[str, Any]:
    """A GradingResult-shaped dict with `failed` failing checks and, optionally, a CIFAR-10 stage."""
    tests = [{"name": f"conv2d.forward.case{i}", "stage": "correctness", "score": 0.0 if i < failed else 1.0,
              "max_score": 1.0, "status": "failed" if i < failed else "passed", "visibility": "visible",
              "output": f"Output differs at [0, {i}, 1, 1]: expected 0.5, got 0.25. Check the padding." if i < failed
              else ""} for i in range(4)]
    stages = [{"name": "correctness", "score": score, "max_score": max_score, "status": status, "duration_s": 3.2,
               "message": "", "details": {}}]
    if accuracy is not None:
        # The shape grader/training/judging.py writes: the training record under details["cifar10"].
        curve = [{"epoch": e, "loss": 2.0 / e, "train_accuracy": accuracy * e / 5, "lr": 0.01, "epoch_s": 60.0}
                 for e in range(1, 6)]
        stages.append({"name": "cifar10", "score": 0.0, "max_score": 0.0, "status": "graded", "duration_s": 600.0,
                       "message": "", "details": {"cifar10": {"test_accuracy": accuracy, "curve": curve,
                                                              "epochs": len(curve)}}})
    return {"score": score, "max_score": max_score, "status": status, "stages": stages, "tests": tests,
            "grader_version": "0.1.0", "message": ""}


def make_submission(db, assignment: Assignment, user: User, *, score: float | None = None,
                    status: str = "graded", signed: bool = True, source: bytes | None = None,
                    accuracy: float | None = None, failed: int = 0) -> Submission:
    """A submission with one run: finished (`score` given) and signed, or queued/running (`status`)."""
    source = source or b"import numpy as np\n\nclass Conv2D:\n    pass\n"
    submission = Submission(assignment=assignment, user=user, filename="spatial.py", content=source,
                            size_bytes=len(source), sha256=hashlib.sha256(source).hexdigest(), created_at=utcnow())
    db.add(submission)
    db.flush()
    run = GradingRun(submission=submission, status=status, stage="correctness", queue="correctness",
                     kind="submit", grader_version="0.1.0", spec_version=assignment.spec_version)
    db.add(run)
    db.flush()
    if score is not None:
        run.result = result_json(score, assignment.max_score, failed=failed, accuracy=accuracy, status=status)
        run.score, run.max_score = score, assignment.max_score
        run.started_at = run.finished_at = utcnow()
        for test in run.result["tests"]:
            db.add(TestResultRow(run_id=run.id, name=test["name"], stage=test["stage"], status=test["status"],
                                 score=test["score"], max_score=test["max_score"]))
        db.flush()
        run.signature = sign_run(run) if signed else ""
    db.flush()
    return submission


def seed_course(db) -> Seed:
    instructor = make_instructor(db)
    course = make_course(db, instructor)
    assignment = make_assignment(db, course)
    student, token = make_student(db, course, "ann@example.edu", "Ann Lovelace", "s001")
    other, other_token = make_student(db, course, "bob@example.edu", "Bob Babbage", "s002")
    badge = credentials.badge_token_for(db, student, assignment)
    return Seed(instructor.id, course.slug, assignment.slug, student.id, token, badge.token, other.id, other_token)


# Live servers (uvicorn + Celery worker as subprocesses)


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

    Redis databases 11 (tests/cli) and 12 (tests/browser) are ours; tests/api uses 13, bench.service_load 14."""
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
                   "--hostname", f"h7-test-{port}@%h"],
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
