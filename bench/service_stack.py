"""The self-started service stack the service benchmarks share (bench.service_load, bench.mixed_load).

A fresh Postgres database (dropped afterwards), one Redis database of the broker (flushed before and after), one
uvicorn process and Celery workers as subprocesses, each in its own process group so that stopping the stack stops
the pool processes and, through the worker's own shutdown, removes their sandboxes. Also the figures both report:
percentiles and the integrity of the stored runs.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import light_client

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
GOOD_FILE = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
POST_THREADS = 8


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of `values` (fraction 0..1)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    """p50 / p90 / p95 / max / mean in seconds and the count; empty input gives only the count."""
    if not values:
        return {"n": 0}
    return {"p50_s": round(percentile(values, 0.5), 2), "p90_s": round(percentile(values, 0.9), 2),
            "p95_s": round(percentile(values, 0.95), 2), "max_s": round(max(values), 2),
            "mean_s": round(statistics.fmean(values), 2), "n": len(values)}


@dataclass
class AssignmentPlan:
    """One assignment of the benchmark course: its slug, spec text and the stages it grades."""

    slug: str
    spec_toml: str
    stages: list[str]


@dataclass
class Stack:
    """The running stack; `env` is what its processes were given (this process uses it too)."""

    name: str
    redis_db: int
    port: int
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    database: str = ""
    log_dir: Path = ROOT / "var"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        import psycopg
        import redis

        self.database = f"grader_{self.name}_{secrets.token_hex(4)}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.database}"')
        broker = f"redis://127.0.0.1:6379/{self.redis_db}"
        redis.Redis.from_url(broker).flushdb()
        self.log_dir = ROOT / "var" / f"bench-{self.name}"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = {"DATABASE_URL": f"{ADMIN_URL.rsplit('/', 1)[0]}/{self.database}", "BROKER_URL": broker,
                    "DATA_DIR": str(self.log_dir), "SECRET_KEY": secrets.token_hex(16), "PYTHONUNBUFFERED": "1",
                    **(extra_env or {})}
        os.environ.update(self.env)
        from grader.settings import get_settings
        from grader.store.db import reset_engine
        from grader.store.migrate import upgrade_head

        get_settings.cache_clear()
        reset_engine()
        upgrade_head()

    def spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "wb")
        process = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **self.env, **(extra_env or {})}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[name] = process
        return process

    def start_api(self) -> None:
        self.spawn("api", [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--port",
                           str(self.port), "--log-level", "warning"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.processes["api"].poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"the API did not start; see {self.log_dir / 'api.log'}")

    def start_worker(self, name: str, queues: str, concurrency: int, *, beat: bool = False,
                     extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        argv = [sys.executable, "-m", "grader.worker", "--queues", queues, "--concurrency", str(concurrency),
                "--hostname", f"{name}-{self.port}@%h"] + (["--beat"] if beat else [])
        return self.spawn(name, argv, {"WORKER_CONCURRENCY": str(concurrency), **(extra_env or {})})

    def close(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        import psycopg
        import redis

        from grader.store.db import reset_engine

        reset_engine()
        if self.database:
            with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        if self.env.get("BROKER_URL"):
            redis.Redis.from_url(self.env["BROKER_URL"]).flushdb()


def make_course(plans: list[AssignmentPlan], students: int, daily_limit: int) -> list[str]:
    """A course with the planned assignments and `students` students; returns the students' API tokens."""
    from grader.assignment_spec import summarize_spec
    from grader.store import credentials
    from grader.store.db import session_scope
    from grader.store.models import Assignment, Course, Enrollment, User

    tokens = []
    with session_scope() as db:
        course = Course(slug="load", title="Load test")
        db.add(course)
        db.flush()
        for plan in plans:
            spec = summarize_spec(plan.spec_toml, plan.stages)
            db.add(Assignment(course_id=course.id, slug=plan.slug, title=plan.slug, spec_toml=plan.spec_toml,
                              spec=spec.parsed, spec_version=spec.version, daily_submission_limit=daily_limit,
                              stage_weights=spec.stage_weights, max_score=spec.max_score, pass_mark=spec.pass_mark,
                              late_policy={}, limits={}))
        for index in range(students):
            user = User(email=f"student{index}@load.example", name=f"S{index}", role="student")
            db.add(user)
            db.flush()
            db.add(Enrollment(course_id=course.id, user_id=user.id, role="student"))
            tokens.append(credentials.issue_api_token(db, user))
    return tokens


def post_one(base_url: str, slug: str, token: str, source: bytes) -> tuple[int, dict, float]:
    """Uploads one file on this thread's kept-alive connection (bench/light_client.py); (status code, JSON body or
    the text, seconds the request took)."""
    started = time.perf_counter()
    form, content_type = light_client.multipart_file("file", "spatial.py", source)
    status, raw = light_client.request(base_url, "POST", f"/api/v1/assignments/{slug}/submissions", token=token,
                                       body=form, content_type=content_type, timeout=60)
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"text": raw.decode("utf-8", "replace")[:500]}
    return status, body, time.perf_counter() - started


def post_burst(base_url: str, slug: str, tokens: list[str], count: int, source: bytes, *,
               tag: str = "load", on_answer=None) -> list[tuple[int, dict, float]]:
    """`count` uploads from POST_THREADS threads, each file differing by a comment (so none is answered from the
    identical-resubmission cache), student i % len(tokens) for upload i. `on_answer(status, body, token,
    started)` is called on the posting thread as each answer arrives (`started`: perf_counter when this student's
    client started, before it read the assignment)."""
    def post(index: int) -> tuple[int, dict, float]:
        token, started = tokens[index % len(tokens)], time.perf_counter()
        # `grader submit` reads the assignment before its upload (deadline, stages, limits): so does each student here.
        status, text = light_client.request(base_url, "GET", f"/api/v1/assignments/{slug}", token=token)
        if status != 200:
            raise RuntimeError(f"reading assignment {slug} answered {status}: {text[:200]!r}")
        answer = post_one(base_url, slug, token, source + f"\n# {tag} {index}\n".encode())
        if on_answer is not None:
            on_answer(answer[0], answer[1], token, started)
        return answer

    with ThreadPoolExecutor(POST_THREADS) as pool:
        return list(pool.map(post, range(count)))


def integrity_of(runs: list, submissions: list, accepted: int, posted: int, done_events: int) -> dict:
    """What the store holds for a burst: every accepted upload stored once, one run each, graded once, signed."""
    from grader.store.signing import verify_run

    return {
        "posted": posted, "accepted_202": accepted, "not_202": posted - accepted, "stored": len(submissions),
        "runs": len(runs), "runs_per_submission_max": max((len(s.runs) for s in submissions), default=0),
        "graded": sum(run.status == "graded" for run in runs),
        "not_graded": sorted({run.status for run in runs} - {"graded"}),
        "done_events": done_events, "signatures_valid": sum(verify_run(run) for run in runs),
        "retried_attempts": sum(max(0, run.attempts - 1) for run in runs),
    }


def integrity_ok(integrity: dict) -> bool:
    """Every posted upload accepted, stored, run once, graded, finished with one done event and a valid signature."""
    return (integrity["not_202"] == 0 and integrity["runs_per_submission_max"] == 1
            and integrity["accepted_202"] == integrity["stored"] == integrity["runs"] == integrity["graded"]
            == integrity["done_events"] == integrity["signatures_valid"] == integrity["posted"])
