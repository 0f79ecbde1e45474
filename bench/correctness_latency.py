"""End-to-end wall time of the correctness stage for a correct file, per sandbox backend.

Run: `.venv/bin/python -m bench.correctness_latency [--runs 7] [--backends unsafe-subprocess,docker] [--loop]`.
Prints a summary and writes bench/results/correctness_latency.json. Per backend: `grade_submission(good_vectorized.py,
stages=["correctness"])` median/p90 over `--runs` runs after one warm-up, split into the sandbox job (start to
removal, as the runner reports it) and the grader's own work (inputs, validation, comparison, diagnosis).
`--loop` adds one run of the loop-style file (the module text's style), which is slow by design.
Targets (issues 2 and 3): under 5 s with any backend, under 3 s with docker. The machine has 2 cores shared with
other work: expect noise, compare medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "correctness_latency.json"
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_s": round(statistics.median(ordered), 3),
            "p90_s": round(ordered[max(0, int(round(0.9 * len(ordered))) - 1)], 3),
            "min_s": round(ordered[0], 3), "max_s": round(ordered[-1], 3), "runs": len(ordered)}


def make_runner(name: str):
    from sandbox.select import select_runner
    from grader.settings import get_settings

    return select_runner(get_settings(), name)


def grade_once(runner, source: bytes) -> tuple[float, float, float, str]:
    from grader.pipeline import grade_submission

    started = time.perf_counter()
    result = grade_submission(source, stages=["correctness"], runner=runner)
    total = time.perf_counter() - started
    stage = result.stages[0]
    return total, float(stage.details.get("sandbox_seconds", 0.0)), result.score / max(result.max_score, 1e-9), \
        result.status


def measure(name: str, runs: int, loop: bool) -> dict:
    try:
        runner = make_runner(name)
    except Exception as error:  # a backend that is not available here is reported, not fatal
        return {"available": False, "reason": str(error)[:300]}
    source = (SUBMISSIONS / "good_vectorized.py").read_bytes()
    grade_once(runner, source)  # warm-up: reference outputs are computed once per process and cached
    totals, sandbox = [], []
    for _ in range(runs):
        total, in_sandbox, fraction, status = grade_once(runner, source)
        if fraction < 1.0 or status != "graded":
            raise SystemExit(f"{name}: good_vectorized.py did not get every point ({fraction:.3f}, {status})")
        totals.append(total)
        sandbox.append(in_sandbox)
    report = {"available": True, "end_to_end": summary(totals), "sandbox_job": summary(sandbox),
              "grader_side_median_s": round(statistics.median(t - s for t, s in zip(totals, sandbox)), 3)}
    if loop:
        total, in_sandbox, fraction, status = grade_once(runner, (SUBMISSIONS / "good_loop.py").read_bytes())
        report["loop_style_once"] = {"end_to_end_s": round(total, 2), "sandbox_job_s": round(in_sandbox, 2),
                                     "fraction_of_points": round(fraction, 4), "status": status}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--backends", default="unsafe-subprocess,docker")
    parser.add_argument("--loop", action="store_true", help="also grade the loop-style file once per backend")
    args = parser.parse_args()
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                           "load_average_1min": round(os.getloadavg()[0], 2)},
               "targets_s": {"any_backend": 5.0, "docker": 3.0}, "backends": {}}
    for name in [name.strip() for name in args.backends.split(",") if name.strip()]:
        results["backends"][name] = report = measure(name, args.runs, args.loop)
        if report.get("available"):
            line = (f"{name:18s} end to end median {report['end_to_end']['median_s']:.2f} s "
                    f"(p90 {report['end_to_end']['p90_s']:.2f} s), sandbox job {report['sandbox_job']['median_s']:.2f} s, "
                    f"grader side {report['grader_side_median_s']:.2f} s")
            if "loop_style_once" in report:
                line += f"; loop-style file {report['loop_style_once']['end_to_end_s']:.1f} s"
            print(line)
        else:
            print(f"{name:18s} not available: {report['reason']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
