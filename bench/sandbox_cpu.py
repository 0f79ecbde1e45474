"""CPU seconds per correctness grade on the container side, without the API, broker or database (issue 14).

Run: `.venv/bin/python -m bench.sandbox_cpu [--runs 40] [--warm 0|1] [--out FILE]` (default
bench/results/sandbox_cpu.json). Grades good_vectorized.py `--runs` times in
a row in this process (`grade_submission`, stage correctness, the docker runner of the settings; with `--warm 1`
one container started ahead as a worker keeps it) and splits the CPU they cost by part (bench/cpu_accounting.py):
this process (the grader's side of a job, as a worker pool process runs it), the sandboxes, dockerd, containerd,
and the shims and runc (exited children reaped by init). Point it at another engine with DOCKER_HOST.

`--floor` runs the smoke harness on an empty file instead (bench/results/sandbox_cpu_floor.json): a fresh container
whose Python imports NumPy and exits, with the correctness job's limits. No grade can cost the container side less
(issue 14: one fresh container per student's job), so it bounds what any cut elsewhere can reach on two cores.
`--floor --concurrency 4` runs them four at a time, as a worker's four pool processes do in a burst, and reports the
empty jobs per minute: the ceiling of any grading throughput on this machine.

On a shared machine the engine's cgroup and init's reaped children carry other people's containers too: measure
a private engine alone with BENCH_PRIVATE_ENGINE (bench/cpu_accounting.py).

Sequential jobs on a shared machine: compare the CPU seconds, not the wall clock, beside the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from bench.cpu_accounting import per_item, snapshot

ROOT = Path(__file__).resolve().parents[1]
GOOD_FILE = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
RESULTS = ROOT / "bench" / "results" / "sandbox_cpu.json"
FLOOR_RESULTS = ROOT / "bench" / "results" / "sandbox_cpu_floor.json"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--warm", type=int, default=0, help="containers started ahead (0: every job cold)")
    parser.add_argument("--floor", action="store_true", help="empty jobs: a container, Python and NumPy only")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="with --floor: jobs run at once, each thread with its own runner as a worker process has")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.out = args.out or (FLOOR_RESULTS if args.floor else RESULTS)
    if args.floor:
        return _report(args, _floor_jobs(args.runs, args.concurrency))

    from grader.pipeline import grade_submission
    from grader.settings import get_settings
    from sandbox.select import select_runner

    settings = get_settings()
    runner = select_runner(settings, "docker")
    source = GOOD_FILE.read_bytes()
    grade_submission(source, stages=["correctness"], runner=runner)  # reference outputs are computed once, here
    if args.warm:  # as grader/tasks.py keeps them for a worker's pool process
        from sandbox.runner import SandboxJob

        runner.keep_warm(SandboxJob("correctness", b"", limits=settings.sandbox_limits()), args.warm)
    walls = []
    before = snapshot({"grader": os.getpid()})
    load_before = os.getloadavg()[0]
    for _ in range(args.runs):
        started = time.perf_counter()
        result = grade_submission(source, stages=["correctness"], runner=runner)
        walls.append(time.perf_counter() - started)
        if result.status != "graded" or result.score < result.max_score:
            raise SystemExit(f"good_vectorized.py did not get every point: {result.status} {result.score}")
    after = snapshot({"grader": os.getpid()})
    served = runner.warm_pool.served if runner.warm_pool is not None else 0
    if runner.warm_pool is not None:
        runner.warm_pool.close()
    return _report(args, {"load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                          "served_warm": served, "wall_median_s": round(statistics.median(walls), 3),
                          "cpu_seconds_per_grade": per_item(before, after, args.runs)})


def _floor_jobs(runs: int, concurrency: int = 1) -> dict:
    """`runs` empty jobs (smoke harness, empty file, the correctness limits) over `concurrency` threads, after one
    warm-up each: CPU by part, and with more than one thread the empty jobs per minute, which no grading throughput
    on this machine can exceed while every job gets its own fresh container."""
    from grader.settings import get_settings
    from sandbox.runner import SandboxJob
    from sandbox.select import select_runner

    settings = get_settings()
    runners = [select_runner(settings, "docker") for _ in range(concurrency)]
    job = SandboxJob("smoke", b"", limits=settings.sandbox_limits())
    for runner in runners:
        runner.run(job)
    walls: list[float] = []
    failures: list[str] = []

    def run_jobs(runner, count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            outcome = runner.run(job)
            walls.append(time.perf_counter() - started)
            if outcome.status != "ok" or b'"imported": true' not in outcome.result:
                failures.append(f"{outcome.status} {outcome.log_tail[-300:]}")

    threads = [threading.Thread(target=run_jobs, args=(runner, runs // concurrency + (index < runs % concurrency)))
               for index, runner in enumerate(runners)]
    before, load_before, started = snapshot({"grader": os.getpid()}), os.getloadavg()[0], time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, after = time.perf_counter() - started, snapshot({"grader": os.getpid()})
    if failures:
        raise SystemExit(f"{len(failures)} empty jobs failed, e.g. {failures[0]}")
    figures = {"load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
               "concurrency": concurrency, "wall_median_s": round(statistics.median(walls), 3),
               "cpu_seconds_per_job": per_item(before, after, runs)}
    if concurrency > 1:
        figures["empty_jobs_per_minute"] = round(runs * 60.0 / elapsed, 1)
    return figures


def _report(args, figures: dict) -> dict:
    from bench.machine_load import machine_yardstick

    report = {"runs": args.runs, "warm": args.warm, "floor": args.floor, "machine_yardstick": machine_yardstick(),
              "engine": os.environ.get("DOCKER_HOST", "default"),
              "private_engine": os.environ.get("BENCH_PRIVATE_ENGINE", ""), **figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
