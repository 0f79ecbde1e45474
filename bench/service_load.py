"""Service under load: 200 submissions posted within a minute are all stored and graded once, none lost.

Run: `.venv/bin/python -m bench.service_load [--submissions 200] [--students 50] [--workers 2]`. Starts its own
stack on a fresh Postgres database (dropped afterwards), Redis db 14, uvicorn (one process) and one Celery worker
on the correctness queue with `--workers` pool processes, grading in the real sandbox (sandbox.select: docker).
Measures:

- posts/s: the submissions posted by 8 client threads as fast as the API accepts them (each file differs by a
  comment, so nothing is answered from the identical-resubmission cache);
- status reads/s: `GET /api/v1/submissions/{id}` by 8 threads for 10 s while the queue is being graded;
- correctness-feedback latency: upload (created_at) to the run's finished_at, p50/p90/max, under that backlog;
- integrity: every posted submission is stored, has exactly one run, finished graded once with a valid signature.

Writes bench/results/service_load.json. The machine has 2 cores shared with other work: grading throughput is
CPU-bound and noisy, and the latency mostly measures the backlog (queue wait), not one job.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "service_load.json"
GOOD_FILE = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
PORT = 8792
REDIS_URL = "redis://127.0.0.1:6379/14"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict:
    return {"p50_s": round(percentile(values, 0.5), 2), "p90_s": round(percentile(values, 0.9), 2),
            "max_s": round(max(values), 2), "mean_s": round(statistics.fmean(values), 2), "n": len(values)}


def setup(env: dict[str, str], students: int, daily_limit: int) -> list[str]:
    """Migrate, create a course with `students` students; returns their tokens and the assignment slug."""
    os.environ.update(env)
    from grader.settings import get_settings

    get_settings.cache_clear()
    from grader.store import credentials
    from grader.assignment_spec import default_spec_toml, summarize_spec
    from grader.store.db import session_scope
    from grader.store.migrate import upgrade_head
    from grader.store.models import Assignment, Course, Enrollment, User

    upgrade_head()
    tokens = []
    with session_scope() as db:
        course = Course(slug="load", title="Load test")
        db.add(course)
        db.flush()
        spec = default_spec_toml()
        summary_ = summarize_spec(spec, ["correctness"])
        db.add(Assignment(course_id=course.id, slug="load-hw", title="Load", spec_toml=spec, spec=summary_.parsed,
                          spec_version=summary_.version, daily_submission_limit=daily_limit,
                          stage_weights=summary_.stage_weights, max_score=summary_.max_score,
                          pass_mark=summary_.pass_mark, late_policy={}, limits={}))
        for index in range(students):
            user = User(email=f"student{index}@load.example", name=f"S{index}", role="student")
            db.add(user)
            db.flush()
            db.add(Enrollment(course_id=course.id, user_id=user.id, role="student"))
            tokens.append(credentials.issue_api_token(db, user))
    return tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="worker pool processes (correctness queue)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for all grades")
    args = parser.parse_args(argv)

    import psycopg
    import redis

    database = f"grader_load_{secrets.token_hex(4)}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    data_dir = ROOT / "var" / "bench-service-load"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{database}", "BROKER_URL": REDIS_URL,
           "DATA_DIR": str(data_dir), "SECRET_KEY": secrets.token_hex(16), "WORKER_CONCURRENCY": str(args.workers)}
    processes: list[subprocess.Popen] = []
    load_start = os.getloadavg()
    try:
        tokens = setup(env, args.students, daily_limit=args.submissions)
        child_env = {**os.environ, **env}
        log = open(data_dir / "stack.log", "wb")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--port", str(PORT),
             "--log-level", "warning"], cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True))
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "grader.worker", "--queues", "correctness", "--concurrency", str(args.workers),
             "--beat"], cwd=ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        base = f"http://127.0.0.1:{PORT}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        source = GOOD_FILE.read_bytes()

        def post(index: int) -> tuple[int, dict, float]:
            token = tokens[index % len(tokens)]
            started = time.perf_counter()
            response = httpx.post(f"{base}/api/v1/assignments/load-hw/submissions", timeout=60,
                                  headers={"Authorization": f"Bearer {token}"},
                                  files={"file": ("spatial.py", source + f"\n# load {index}\n".encode())})
            try:
                body = response.json()
            except ValueError:
                body = {"text": response.text[:500]}
            return response.status_code, body, time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(8) as pool:
            posted = list(pool.map(post, range(args.submissions)))
        post_seconds = time.perf_counter() - started
        accepted = [body for code, body, _ in posted if code == 202]
        refused = [(index, code, body) for index, (code, body, _) in enumerate(posted) if code != 202]
        print(f"posted {len(accepted)}/{args.submissions} in {post_seconds:.1f}s", flush=True)
        for index, code, body in refused:
            # Every upload must be accepted: one answered otherwise is a lost upload, whatever happens next.
            print(f"FAILED: upload {index} answered {code}: {json.dumps(body)[:300]}", file=sys.stderr, flush=True)

        reads, stop = [0], threading.Event()
        lock = threading.Lock()

        def reader(offset: int) -> None:
            client = httpx.Client(base_url=base, timeout=30)
            index = offset
            while not stop.is_set():
                body = accepted[index % len(accepted)]
                token = tokens[int(body["submission_id"] - 1) % len(tokens)]
                response = client.get(body["status_url"], headers={"Authorization": f"Bearer {token}"})
                assert response.status_code in (200, 404), response.text
                with lock:
                    reads[0] += 1
                index += 8

        read_threads = [threading.Thread(target=reader, args=(offset,)) for offset in range(8)]
        read_started = time.perf_counter()
        for thread in read_threads:
            thread.start()
        time.sleep(10)
        stop.set()
        for thread in read_threads:
            thread.join()
        read_seconds = time.perf_counter() - read_started

        from sqlalchemy import func, select

        from grader.store.db import session_scope
        from grader.store.models import GradingRun, RunEvent, Submission
        from grader.store.signing import verify_run

        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            with session_scope() as db:
                pending = db.scalar(select(func.count(GradingRun.id)).where(
                    GradingRun.status.in_(("queued", "running"))))
            if pending == 0:
                break
            print(f"  {pending} runs still queued or running", flush=True)
            time.sleep(10)
        with session_scope() as db:
            submissions = db.scalars(select(Submission)).all()
            runs = db.scalars(select(GradingRun)).all()
            done_events = db.scalar(select(func.count(RunEvent.id)).where(RunEvent.type == "done"))
            latencies = [(run.finished_at - run.submission.created_at).total_seconds() for run in runs
                         if run.finished_at]
            job_seconds = [float(run.stage_seconds.get("correctness", 0)) for run in runs if run.stage_seconds]
            integrity = {
                "posted": args.submissions, "accepted_202": len(accepted), "not_202": len(refused),
                "stored": len(submissions),
                "runs": len(runs), "runs_per_submission_max": max(len(s.runs) for s in submissions),
                "graded": sum(run.status == "graded" for run in runs),
                "not_graded": sorted({run.status for run in runs} - {"graded"}),
                "done_events": done_events, "signatures_valid": sum(verify_run(run) for run in runs),
                "retried_attempts": sum(max(0, run.attempts - 1) for run in runs),
            }
        first_created = min(s.created_at for s in submissions)
        last_finished = max(run.finished_at for run in runs if run.finished_at)
        result = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "load_average_at_start": load_start, "load_average_at_end": os.getloadavg()},
            "setup": {"submissions": args.submissions, "students": args.students, "post_threads": 8,
                      "read_threads": 8, "worker_pool_processes": args.workers, "api_processes": 1,
                      "store": "postgres", "broker": "redis", "sandbox": runs[0].backend if runs else ""},
            "posts": {"seconds": round(post_seconds, 2), "per_second": round(len(accepted) / post_seconds, 1),
                      "request_latency": summary([seconds for _, _, seconds in posted])},
            "status_reads": {"seconds": round(read_seconds, 2), "count": reads[0],
                             "per_second": round(reads[0] / read_seconds, 1)},
            "correctness_feedback_latency": summary(latencies),
            "correctness_job_seconds": summary(job_seconds),
            "drain_seconds": round((last_finished - first_created).total_seconds(), 1),
            "graded_per_minute": round(len(latencies) / max(1e-9, (last_finished - first_created).total_seconds())
                                       * 60, 1),
            "integrity": integrity,
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps(result, indent=2, default=str))
        ok = (not refused and integrity["accepted_202"] == integrity["stored"] == integrity["runs"]
              == integrity["graded"] == integrity["done_events"] == integrity["signatures_valid"] == args.submissions)
        if not ok:
            print(f"FAILED: {len(refused)} upload(s) not accepted; integrity {json.dumps(integrity)}",
                  file=sys.stderr, flush=True)
        return 0 if ok else 1
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        from grader.store.db import reset_engine

        reset_engine()
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        redis.Redis.from_url(REDIS_URL).flushdb()


if __name__ == "__main__":
    sys.exit(main())
