"""Correctness feedback while CIFAR-10 training runs on the same 2 cores (issue 14: feedback fast under load).

Run: `.venv/bin/python -m bench.mixed_load [--submissions 50] [--training-runs 2] [--epochs 2] [--redis-db 15]
[--port 8793]`.
Starts its own stack as docker-compose.yml runs it (bench/service_stack.py): a fresh Postgres database, Redis db
`--redis-db`, uvicorn, a training worker (queue `training`, its own process, `--training-runs` pool processes,
training containers at the lower CPU weight settings.training_cpu_shares) and a correctness worker (queue
`correctness`, its own process, `--workers` pool processes with warm containers). Then:

1. prepares the CIFAR-10 cache if missing (grader/training/evaluation.py ensure_dataset, from
   settings.cifar10_source);
2. uploads tests/fixtures/submissions/good_vectorized.py `--training-runs` times to an assignment with the cifar10
   stage (the recipe cut to `--epochs` epochs: the runs only need to be in progress) and waits until that many
   training containers of the training worker are running;
3. posts `--submissions` correctness-only uploads (an assignment without the cifar10 stage) from 8 threads, each
   followed by its student's client as `grader submit` follows it (bench/followers.py), and waits for their
   grades;
4. measures each correctness run's queue wait (enqueued -> claimed by a worker) and feedback latency (upload ->
   finished), with the load average (bench/machine_load.py); the target is a p95 wait under 10 s;
5. checks that both training runs were still running when the last correctness grade was stored (otherwise the
   burst did not compete with training and the figures say nothing) and stops the stack, which interrupts them.

Writes bench/results/mixed_load.json. Exit 1 when an upload is not answered 202, a correctness upload is not graded
exactly once with a valid signature, or the training runs did not overlap the burst.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

from bench import followers, light_client
from bench.followers import Followers
from bench.machine_load import machine_yardstick, open_window
from bench.service_load import grading_figures, store_counts, wait_for_grades
from bench.service_stack import GOOD_FILE, AssignmentPlan, Stack, make_course, post_burst, post_one

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "mixed_load.json"
PORT = 8793
TRAINING_SLUG = "mixed-train"
CORRECTNESS_SLUG = "mixed-hw"
WAIT_TARGET_P95_S = 10.0


def training_spec(epochs: int) -> str:
    """The default spec with its cifar10 recipe cut to `epochs` epochs (the runs only need to be in progress)."""
    from grader.assignment_spec import default_spec_toml

    spec, count = re.subn(r"(?m)^epochs = \d+", f"epochs = {epochs}", default_spec_toml())
    if count != 1:
        raise RuntimeError("the default spec has no `epochs = N` line in [stages.cifar10] to shorten")
    return spec


def _pids_under(root: int) -> set[int]:
    """`root` and its live descendants (the worker and its pool processes)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                text = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(text[text.rindex(")") + 2:].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, of in parents.items() if of == parent and pid not in found]
        found.update(children)
        frontier.extend(children)
    return found


def training_containers(worker_pid: int) -> list:
    """Running job containers started by the training worker's pool processes (by their worker-pid label)."""
    from sandbox.docker_backend import JOB_LABEL, WORKER_PID_LABEL, connect

    pids = {str(pid) for pid in _pids_under(worker_pid)}
    containers = connect().containers.list(filters={"label": f"{JOB_LABEL}=1", "status": "running"})
    return [container for container in containers if container.labels.get(WORKER_PID_LABEL) in pids]


def training_states() -> list[tuple[str, str]]:
    """(stage, status) of each run of the training assignment."""
    from sqlalchemy import select

    from grader.store.db import session_scope
    from grader.store.models import Assignment, GradingRun, Submission

    with session_scope() as db:
        rows = db.execute(select(GradingRun.stage, GradingRun.status).join(Submission).join(Assignment)
                          .where(Assignment.slug == TRAINING_SLUG).order_by(GradingRun.id)).all()
    return [(stage, status) for stage, status in rows]


def start_training(stack: Stack, tokens: list[str], count: int, timeout: float) -> list[str]:
    """Uploads the good file `count` times to the training assignment and waits for that many running training
    containers; returns their ids."""
    source = GOOD_FILE.read_bytes()
    for index in range(count):
        code, body, _ = post_one(stack.base_url, TRAINING_SLUG, tokens[-1 - index], source + f"\n# t{index}\n".encode())
        if code != 202:
            raise RuntimeError(f"the training upload {index} was answered {code}: {json.dumps(body)[:300]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = training_containers(stack.processes["worker-training"].pid)
        states = training_states()
        if len(running) >= count and states.count(("cifar10", "running")) == count:
            print(f"{len(running)} training containers running", flush=True)
            return [container.id for container in running]
        if any(status not in ("queued", "running") for _, status in states):
            raise RuntimeError(f"a training run ended before the burst: {states}")
        time.sleep(2)
    raise RuntimeError(f"{count} training containers were not running within {timeout:.0f} s: {training_states()}")


def burst(stack: Stack, tokens: list[str], count: int, timeout: float) -> tuple[list, float, dict]:
    """The correctness uploads, each followed by its student's client as in bench.service_load, and their grades;
    (posted answers, seconds the posting took, what the waiting students saw)."""
    waiting = Followers(stack.base_url)

    def follow(status: int, body: dict, token: str, posted_at: float) -> None:
        if status == 202:
            waiting.start(body["status_url"], token, posted_at, timeout)

    started = time.perf_counter()
    posted = post_burst(stack.base_url, CORRECTNESS_SLUG, tokens, count, GOOD_FILE.read_bytes(), tag="mixed",
                        on_answer=follow)
    post_seconds = time.perf_counter() - started
    for index, (code, body, _) in enumerate(posted):
        if code != 202:  # every upload must be accepted: one answered otherwise is a lost upload
            print(f"FAILED: upload {index} answered {code}: {json.dumps(body)[:300]}", file=sys.stderr, flush=True)
    wait_for_grades(timeout, CORRECTNESS_SLUG)
    return posted, post_seconds, followers.figures(waiting.join(timeout=60.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=50)
    parser.add_argument("--students", type=int, default=50)
    parser.add_argument("--training-runs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of the training runs' recipe")
    parser.add_argument("--workers", type=int, default=4, help="correctness worker pool processes")
    parser.add_argument("--redis-db", type=int, default=15, help="broker database (service_load uses 14)")
    parser.add_argument("--port", type=int, default=PORT, help="the API's port (one per concurrent benchmark)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for each phase")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    yardstick = machine_yardstick()  # before the stack starts: nothing else of this run is on the cores
    stack = Stack("mixed", args.redis_db, args.port)
    try:
        stack.start()
        return run(stack, args, yardstick)
    finally:
        stack.close()


def run(stack: Stack, args: argparse.Namespace, yardstick: dict) -> int:
    from grader.assignment_spec import default_spec_toml
    from grader.settings import get_settings
    from grader.training.evaluation import ensure_dataset

    settings = get_settings()
    ensure_dataset(settings)
    tokens = make_course([AssignmentPlan(TRAINING_SLUG, training_spec(args.epochs), ["correctness", "cifar10"]),
                          AssignmentPlan(CORRECTNESS_SLUG, default_spec_toml(), ["correctness"])],
                         max(args.students, args.training_runs + 1), daily_limit=args.submissions + 10)
    stack.start_api()
    stack.start_worker("worker-correctness", "correctness", args.workers, beat=True)
    stack.start_worker("worker-training", "training", args.training_runs)
    container_ids = start_training(stack, tokens, args.training_runs, args.timeout)
    window = open_window()
    print(f"posting {args.submissions} correctness uploads beside {len(container_ids)} training runs "
          f"({window.describe()})", flush=True)
    posted, post_seconds, followed = burst(stack, tokens[: len(tokens) - args.training_runs], args.submissions,
                                           args.timeout)
    training_after = training_states()
    still_training = len(training_containers(stack.processes["worker-training"].pid))
    window.close()
    accepted = sum(code == 202 for code, _, _ in posted)
    figures = grading_figures(CORRECTNESS_SLUG, args.submissions, accepted, store_counts())
    overlapped = training_after.count(("cifar10", "running")) == args.training_runs == still_training
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), **window.as_dict(),
                    "yardstick": yardstick},
        "setup": {"submissions": args.submissions, "training_runs": args.training_runs, "epochs": args.epochs,
                  "correctness_pool_processes": args.workers, "training_pool_processes": args.training_runs,
                  "warm_containers_per_process": settings.sandbox_warm_containers,
                  "training_cpu_shares": settings.training_cpu_shares,
                  "correctness_cpu_shares": settings.sandbox_cpu_shares, "sandbox": figures.pop("backend")},
        "posts": {"seconds": round(post_seconds, 2), "accepted_202": accepted},
        "training": {"containers_running_after_burst": still_training, "runs_after_burst": training_after,
                     "overlapped_burst": overlapped},
        **figures,
        "waiting_students": followed,
        "requests_resent_after_a_dropped_connection": dict(light_client.resent),
        "wait_target_p95_s": WAIT_TARGET_P95_S,
    }
    result["wait_target_met"] = figures["queue_wait"].get("p95_s", float("inf")) < WAIT_TARGET_P95_S
    return report(result, args.out, window)


def report(result: dict, out: Path, window) -> int:
    """Writes and prints the figures; the exit code (1: integrity failed or training did not overlap)."""
    from bench.service_stack import integrity_ok

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))
    wait, latency = result["queue_wait"], result["correctness_feedback_latency"]
    verdict = "met" if result["wait_target_met"] else "NOT met"
    print(f"beside {result['setup']['training_runs']} training runs: queue wait p50 {wait.get('p50_s')} s, p95 "
          f"{wait.get('p95_s')} s (target < {WAIT_TARGET_P95_S} s: {verdict});"
          f" feedback p50 {latency.get('p50_s')} s, p95 {latency.get('p95_s')} s; job p50 "
          f"{result['correctness_job_seconds'].get('p50_s')} s ({window.describe()})", flush=True)
    failed = False
    if not integrity_ok(result["integrity"]):
        print(f"FAILED: integrity {json.dumps(result['integrity'])}", file=sys.stderr, flush=True)
        failed = True
    if result["requests_resent_after_a_dropped_connection"]["POST"]:
        print("FAILED: uploads were sent twice after a dropped connection", file=sys.stderr, flush=True)
        failed = True
    waiting = result["waiting_students"]
    if waiting["saw_grade"] != waiting["followers"] or waiting["errors"]:
        print(f"FAILED: waiting students {json.dumps(waiting)}", file=sys.stderr, flush=True)
        failed = True
    if not result["training"]["overlapped_burst"]:
        print(f"FAILED: the training runs were not running through the burst ({result['training']}); the figures "
              "do not measure feedback beside training (raise --epochs)", file=sys.stderr, flush=True)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
