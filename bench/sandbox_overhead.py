"""Sandbox cost per job: empty-job overhead (start to removal) and the correctness stage end to end.

Run: `.venv/bin/python -m bench.sandbox_overhead [--runs 20] [--backends docker,bwrap]`. Prints a summary and writes
bench/results/sandbox_overhead.json. Measures, per backend:

- empty job: `runner.run()` of the smoke harness on `pass` (job directory, container create/start/wait/inspect,
  removal, job directory removal), median and p90 over `--runs` runs after one warm-up;
- correctness stage: `grade_submission(good_vectorized.py, stages=["correctness"])` end to end, median and p90;
- BLAS speed inside the sandbox vs the host venv: float32 1024x1024 matmul GFLOP/s with 1 thread.

The machine has 2 cores shared with other work: expect noise, and compare medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "sandbox_overhead.json"
GOOD_FILE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
MATMUL = '''
import json, time, numpy as np
a = np.random.rand(1024, 1024).astype(np.float32); b = np.random.rand(1024, 1024).astype(np.float32)
a @ b
best = 1e9
for _ in range(5):
    t = time.perf_counter(); a @ b; best = min(best, time.perf_counter() - t)
gflops = round(2 * 1024 ** 3 / best / 1e9, 1)
'''
MATMUL_REPORT = 'open("/job/out/result.bin", "w").write(json.dumps({"gflops": gflops})); import os; os._exit(0)\n'


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_s": round(statistics.median(ordered), 3),
            "p90_s": round(ordered[max(0, int(round(0.9 * len(ordered))) - 1)], 3),
            "min_s": round(ordered[0], 3), "max_s": round(ordered[-1], 3), "runs": len(ordered)}


def measure_backend(name: str, runs: int, grading_runs: int) -> dict:
    from grader.pipeline import grade_submission
    from grader.settings import get_settings
    from sandbox.runner import SandboxJob
    from sandbox.select import bwrap_runner, docker_runner

    settings = get_settings()
    runner = docker_runner(settings) if name == "docker" else bwrap_runner(settings)
    empty = SandboxJob("smoke", b"pass\n", limits=settings.sandbox_limits())
    runner.run(empty)  # warm-up: page cache, image layers
    overhead = []
    for _ in range(runs):
        started = time.perf_counter()
        outcome = runner.run(empty)
        overhead.append(time.perf_counter() - started)
        assert outcome.status == "ok", outcome
    figures: dict = {"empty_job": summary(overhead)}
    if GOOD_FILE.is_file():
        source = GOOD_FILE.read_bytes()
        grade_submission(source, stages=["correctness"], runner=runner)  # warm-up: reference, spec, inputs
        grading = []
        for _ in range(grading_runs):
            started = time.perf_counter()
            result = grade_submission(source, stages=["correctness"], runner=runner)
            grading.append(time.perf_counter() - started)
            assert result.score == result.max_score, result.message
        figures["correctness_good_vectorized"] = summary(grading)
    matmul = runner.run(SandboxJob("smoke", (MATMUL + MATMUL_REPORT).encode(), limits=settings.sandbox_limits()))
    figures["matmul_gflops_float32_1024_1thread"] = json.loads(matmul.result)["gflops"] if matmul.result else None
    if name == "docker":
        figures["image_id"] = runner.image_id
    return figures


def host_gflops() -> float:
    code = MATMUL + "print(gflops)\n"
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                env=environment).stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="empty jobs per backend")
    parser.add_argument("--grading-runs", type=int, default=7, help="correctness-stage runs per backend")
    parser.add_argument("--backends", default="docker,bwrap")
    args = parser.parse_args(argv)
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "load_average_at_start": os.getloadavg()},
              "host_matmul_gflops_float32_1024_1thread": host_gflops(), "backends": {}}
    for name in args.backends.split(","):
        report["backends"][name] = measure_backend(name, args.runs, args.grading_runs)
        figures = report["backends"][name]
        print(f"{name}: empty job median {figures['empty_job']['median_s']} s, p90 {figures['empty_job']['p90_s']} s; "
              f"correctness (good_vectorized) median "
              f"{figures.get('correctness_good_vectorized', {}).get('median_s')} s, "
              f"p90 {figures.get('correctness_good_vectorized', {}).get('p90_s')} s; "
              f"matmul {figures['matmul_gflops_float32_1024_1thread']} GFLOP/s")
    report["machine"]["load_average_at_end"] = os.getloadavg()
    print(f"host venv matmul {report['host_matmul_gflops_float32_1024_1thread']} GFLOP/s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
