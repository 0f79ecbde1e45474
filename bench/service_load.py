"""Service under load: 200 submissions posted within a minute are all stored and graded once, none lost.

Run: `.venv/bin/python -m bench.service_load [--submissions 200] [--students 50] [--workers 4] [--warm 1]
[--redis-db 14]`. Starts its own stack (bench/service_stack.py): a fresh Postgres database (dropped afterwards),
Redis db `--redis-db`, uvicorn (one process) and one Celery worker on the correctness queue with `--workers` pool
processes, each keeping `--warm` containers started ahead (setting sandbox_warm_containers), grading in the real
sandbox (sandbox.select: docker). Measures, with the load average before and after (bench/machine_load.py):

- posts/s: the submissions posted by 8 client threads as fast as the API accepts them (each file differs by a
  comment, so nothing is answered from the identical-resubmission cache);
- the students waiting: each accepted upload is followed by its student's client the way `grader submit` follows
  it (bench/followers.py: straight to the event stream until `done`, which carries the finished submission; a
  fourth stream of the same student is refused with a 429 and tried again after its Retry-After). What that costs
  the service is in the figures below, and the latency a student sees (upload to seeing the grade) is reported beside the store's;
- correctness-feedback latency: upload (created_at) to the run's finished_at, p50/p90/max, under that backlog, and
  where it goes per run: queue wait (enqueued -> claimed), the stage itself (sandbox job, checks, judging) and the
  worker's own share (claimed -> finished minus the stage: claim, records, signing);
- status-read capacity: `GET /api/v1/submissions/{id}` by 8 threads back to back for `--read-seconds`, AFTER the
  drain. (Earlier versions ran these readers during the burst: they stood for no student's client, kept one of the
  two cores busy whatever a read cost, and halved grading while they ran; the followers above are the load real
  students put on the service while they wait.)
- drain: first upload to last grade, and grades per minute over it;
- integrity: every posted upload answered 202, stored, has exactly one run, finished graded once with a valid
  signature. Anything else fails the benchmark (exit 1);
- CPU seconds per grade by part (API, worker, sandboxes, engine, Postgres, Redis; bench/cpu_accounting.py): on
  2 cores throughput is bounded by their sum.

The client threads use one kept-alive http.client connection each (bench/light_client.py): they stand for
students' machines but share the service's two cores, and httpx cost them ten times the CPU for the same requests.

Writes bench/results/service_load.json. The machine has 2 cores shared with other work: grading throughput is
CPU-bound and noisy; the latency mostly measures the backlog (queue wait), not one job.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

from bench import light_client
from bench import followers
from bench.cpu_accounting import per_item, snapshot
from bench.followers import Followers
from bench.machine_load import machine_yardstick, open_window
from bench.service_stack import (GOOD_FILE, AssignmentPlan, Stack, integrity_of, integrity_ok, make_course,
                                 percentile, post_burst, summary)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "service_load.json"
PORT = 8792
SLUG = "load-hw"

__all__ = ["main", "percentile", "summary"]


def read_statuses(base_url: str, accepted: list[dict], tokens: list[str], seconds: float) -> tuple[int, float]:
    """8 threads reading submission statuses for `seconds`, each on its own kept-alive connection
    (bench/light_client.py); (reads, seconds taken)."""
    reads, stop, lock = [0], threading.Event(), threading.Lock()

    def reader(offset: int) -> None:
        index = offset
        while not stop.is_set():
            body = accepted[index % len(accepted)]
            token = tokens[int(body["submission_id"] - 1) % len(tokens)]
            status, text = light_client.request(base_url, "GET", body["status_url"], token=token)
            assert status in (200, 404), text
            with lock:
                reads[0] += 1
            index += 8

    threads = [threading.Thread(target=reader, args=(offset,)) for offset in range(8)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return reads[0], time.perf_counter() - started


def wait_for_grades(timeout: float, slug: str | None = None, queue: str | None = None) -> None:
    """Polls the store until no run (of `slug`, in `queue`) is queued or running, or `timeout` passes."""
    from sqlalchemy import func, select

    from grader.store.db import session_scope
    from grader.store.models import Assignment, GradingRun, Submission

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        query = select(func.count(GradingRun.id)).where(GradingRun.status.in_(("queued", "running")))
        if slug:
            query = query.join(Submission).join(Assignment).where(Assignment.slug == slug)
        if queue:
            query = query.where(GradingRun.queue == queue)
        with session_scope() as db:
            pending = db.scalar(query)
        if pending == 0:
            return
        print(f"  {pending} runs still queued or running", flush=True)
        time.sleep(2)


def store_counts() -> tuple[int, int, int, int]:
    """The database's transactions and rows inserted, updated and deleted since it was created (API, workers and
    this process), as Postgres counts them once every backend has reported its own: an idle backend reports what
    it has not yet within ten seconds (PGSTAT_IDLE_INTERVAL)."""
    import psycopg

    from grader.settings import get_settings

    url = get_settings().database_url
    time.sleep(11.0)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT pg_stat_clear_snapshot()")
        return connection.execute("SELECT xact_commit + xact_rollback, tup_inserted, tup_updated, tup_deleted "
                                  "FROM pg_stat_database WHERE datname = current_database()").fetchone()


def grading_figures(slug: str, posted: int, accepted: int, store: tuple[int, int, int, int]) -> dict:
    """Latency, its parts and integrity of the runs of assignment `slug`, from the store; `store` the database's
    counts at the end of the drain (store_counts)."""
    from sqlalchemy import func, select

    from grader.store.db import session_scope
    from grader.store.models import Assignment, GradingRun, RunEvent, Submission

    with session_scope() as db:
        submissions = db.scalars(select(Submission).join(Assignment).where(Assignment.slug == slug)).all()
        runs = [run for submission in submissions for run in submission.runs]
        done_events = db.scalar(select(func.count(RunEvent.id)).where(
            RunEvent.type == "done", RunEvent.run_id.in_([run.id for run in runs])))
        finished = [run for run in runs if run.finished_at and run.started_at]
        latencies = [(run.finished_at - run.submission.created_at).total_seconds() for run in finished]
        waits = [(run.started_at - run.enqueued_at).total_seconds() for run in finished]
        stage = [float(run.stage_seconds.get("correctness", 0)) for run in finished]
        worker_share = [(run.finished_at - run.started_at).total_seconds() - seconds
                        for run, seconds in zip(finished, stage)]
        integrity = integrity_of(runs, submissions, accepted, posted, done_events)
        first_created = min((s.created_at for s in submissions), default=None)
        last_finished = max((run.finished_at for run in finished), default=None)
        backend = runs[0].backend if runs else ""
    drain = (last_finished - first_created).total_seconds() if finished else 0.0
    # Grades finished in each 5-second window from the first upload: whether grading slows while uploads and
    # status reads take the cores, or keeps its pace.
    timeline = [0] * (int(drain // 5) + 1)
    for run in finished:
        timeline[int((run.finished_at - first_created).total_seconds() // 5)] += 1
    return {"correctness_feedback_latency": summary(latencies), "queue_wait": summary(waits),
            "correctness_job_seconds": summary(stage), "worker_share_seconds": summary(worker_share),
            "drain_seconds": round(drain, 1), "graded_per_5s_window": timeline if finished else [],
            "graded_per_minute": round(len(finished) / max(drain, 1e-9) * 60, 1),
            "integrity": integrity, "backend": backend,
            # The whole database from its creation to the end of the drain (API, workers and this process, all
            # assignments; not the status reads after it), per graded run.
            "store_per_grade": {name: round(value / max(1, integrity["graded"]), 1) for name, value in
                                zip(("transactions", "rows_inserted", "rows_updated", "rows_deleted"), store)}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="worker pool processes (correctness queue)")
    parser.add_argument("--warm", type=int, default=None,
                        help="containers each pool process keeps started ahead (default: the setting's)")
    parser.add_argument("--redis-db", type=int, default=14, help="broker database (another helper may use 14)")
    parser.add_argument("--port", type=int, default=PORT, help="the API's port (two checkouts side by side)")
    parser.add_argument("--read-seconds", type=float, default=10.0, help="how long the status readers run")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for all grades")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    yardstick = machine_yardstick()  # before the stack starts: nothing else of this run is on the cores
    stack = Stack("load", args.redis_db, args.port)
    worker_env = {} if args.warm is None else {"SANDBOX_WARM_CONTAINERS": str(args.warm)}
    try:
        stack.start(worker_env)
        from grader.assignment_spec import default_spec_toml
        from grader.settings import get_settings

        tokens = make_course([AssignmentPlan(SLUG, default_spec_toml(), ["correctness"])], args.students,
                             daily_limit=args.submissions)
        stack.start_api()
        stack.start_worker("worker-correctness", "correctness", args.workers, beat=True)
        time.sleep(3)  # the pool's processes are forked and ready: a worker's start is not part of the burst
        roots = {name: process.pid for name, process in stack.processes.items()}
        cpu_before, client_before = snapshot(roots), time.process_time()
        window = open_window()
        print(f"posting {args.submissions} uploads ({window.describe()})", flush=True)
        waiting = Followers(stack.base_url)

        def follow(status: int, body: dict, token: str, posted_at: float) -> None:
            if status == 202:
                waiting.start(body["status_url"], token, posted_at, args.timeout)

        started = time.perf_counter()
        posted = post_burst(stack.base_url, SLUG, tokens, args.submissions, GOOD_FILE.read_bytes(),
                            on_answer=follow)
        post_seconds = time.perf_counter() - started
        accepted = [body for code, body, _ in posted if code == 202]
        print(f"posted {len(accepted)}/{args.submissions} in {post_seconds:.1f}s", flush=True)
        for index, (code, body, _) in enumerate(posted):
            if code != 202:  # every upload must be accepted: one answered otherwise is a lost upload
                print(f"FAILED: upload {index} answered {code}: {json.dumps(body)[:300]}", file=sys.stderr,
                      flush=True)
        wait_for_grades(args.timeout, SLUG)
        followed = followers.figures(waiting.join(timeout=60.0))
        window.close()
        cpu_after, client_seconds = snapshot(roots), time.process_time() - client_before
        store = store_counts()
        # After the drain, so that it measures the API alone and takes nothing from grading.
        reads, read_seconds = read_statuses(stack.base_url, accepted, tokens, args.read_seconds) if accepted \
            else (0, 1.0)
        figures = grading_figures(SLUG, args.submissions, len(accepted), store)
        figures["cpu_seconds_per_grade"] = per_item(cpu_before, cpu_after, figures["integrity"]["graded"])
        # This process's client threads (8 posting, one follower per upload) stand for students' machines but
        # run on the service's two cores.
        figures["client_cpu_seconds"] = round(client_seconds, 2)
        figures["waiting_students"] = followed
        figures["requests_resent_after_a_dropped_connection"] = dict(light_client.resent)
        result = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **window.as_dict(),
                        "yardstick": yardstick},
            "setup": {"submissions": args.submissions, "students": args.students, "post_threads": 8,
                      "read_threads": 8, "worker_pool_processes": args.workers, "api_processes": 1,
                      "warm_containers_per_process": get_settings().sandbox_warm_containers,
                      "store": "postgres", "broker": "redis", "sandbox": figures.pop("backend")},
            "posts": {"seconds": round(post_seconds, 2), "per_second": round(len(accepted) / post_seconds, 1),
                      "request_latency": summary([seconds for _, _, seconds in posted])},
            "status_read_capacity_after_drain": {"seconds": round(read_seconds, 2), "count": reads,
                                                 "per_second": round(reads / read_seconds, 1)},
            **figures,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps(result, indent=2, default=str))
        print(f"{result['graded_per_minute']} grades/min, drain {result['drain_seconds']} s, feedback p50 "
              f"{result['correctness_feedback_latency'].get('p50_s')} s (seen by the student p50 "
              f"{followed['feedback_seen_by_student'].get('p50_s')} s), job p50 "
              f"{result['correctness_job_seconds'].get('p50_s')} s ({window.describe()})", flush=True)
        print(f"CPU seconds per grade: {result['cpu_seconds_per_grade']}", flush=True)
        print(f"machine yardstick: {yardstick}", flush=True)
        if light_client.resent["POST"]:
            print(f"FAILED: {light_client.resent['POST']} uploads were sent twice after a dropped connection",
                  file=sys.stderr, flush=True)
            return 1
        if followed["saw_grade"] != len(accepted) or followed["errors"]:
            print(f"FAILED: waiting students {json.dumps(followed)}", file=sys.stderr, flush=True)
            return 1
        if not integrity_ok(figures["integrity"]):
            print(f"FAILED: integrity {json.dumps(figures['integrity'])}", file=sys.stderr, flush=True)
            return 1
        return 0
    finally:
        stack.close()


if __name__ == "__main__":
    sys.exit(main())
