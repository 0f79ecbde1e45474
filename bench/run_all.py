"""`make bench`: every benchmark in turn, each in its own process; figures land in bench/results/*.json.

Before each benchmark it waits (up to --wait seconds) for the 1-minute load average to fall to 1.5 or below and
prints the load average before and after it; the step benchmarks withhold their ratios themselves when the machine
was busy (bench.machine_load). The CIFAR-10 runs take tens of minutes on 2 cores; `python -m bench.run_all --skip
cifar10_seeds` leaves out the longest one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from bench.machine_load import LOAD_LIMIT, load_average, wait_until_quiet

BENCHMARKS = [
    "reference_step",  # reference training step vs PyTorch CPU, per-layer split
    "kit_step",  # the course kit + good_vectorized.py step vs PyTorch and the reference
    "sandbox_overhead",  # empty-job overhead and correctness stage end to end, docker and bwrap
    "sandbox_cpu",  # CPU seconds per correctness grade on the container side, by part (worker, sandbox, engine)
    "sandbox_cpu_floor",  # the same for an empty job (a fresh container, Python and NumPy): what no grade goes below
    "sandbox_cpu_ceiling",  # empty jobs four at a time: the most jobs per minute this machine runs, fresh containers
    "correctness_latency",  # correctness stage end to end, subprocess and docker
    "service_load",  # 200 submissions through API, broker, workers, store
    "mixed_load",  # 50 correctness submissions beside two CIFAR-10 training runs: queue wait and feedback
    "dashboard_pages",  # dashboard pages, charts and badges on 200 students x 5 graded submissions
    "cifar10_speed_probe",  # the loop-style file stopped by the speed probe, with the per-layer explanation
    "cifar10_reference",  # full CIFAR-10 run of good_vectorized.py in the sandbox, graded outside
    "cifar10_seeds",  # reference accuracy over 3 seeds (mean, spread)
    "speed_calibration",  # the probe's yardstick: its idle time and each step's cost in yardsticks
    "cifar10_busy_host",  # the good file's full stage with two CPU-bound processes beside it
]
# Benchmarks that are another's module run with arguments.
COMMANDS = {"sandbox_cpu_floor": ["sandbox_cpu", "--floor"],
            "sandbox_cpu_ceiling": ["sandbox_cpu", "--floor", "--concurrency", "4", "--runs", "200",
                                    "--out", "bench/results/sandbox_cpu_ceiling.json"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None)
    parser.add_argument("--skip", nargs="+", choices=BENCHMARKS, default=[])
    parser.add_argument("--wait", type=float, default=600.0,
                        help=f"seconds to wait before each benchmark for the load average to reach {LOAD_LIMIT}")
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or BENCHMARKS:
        if name in args.skip:
            continue
        print(f"\n=== bench.{name}", flush=True)
        quiet = wait_until_quiet(timeout_s=args.wait, log=lambda text: print(f"    {text}", flush=True))
        load_before = load_average()
        if not quiet:
            print(f"    running on a busy machine (load average {load_before:.2f}): its figures are not "
                  "comparable with idle ones, and ratios are withheld", flush=True)
        started = time.monotonic()
        module, *module_args = COMMANDS.get(name, [name])
        code = subprocess.call([sys.executable, "-m", f"bench.{module}", *module_args])
        print(f"=== bench.{name}: exit {code} after {time.monotonic() - started:.0f} s (load average "
              f"{load_before:.2f} before, {load_average():.2f} after)", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
