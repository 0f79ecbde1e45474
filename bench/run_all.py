"""`make bench`: every benchmark in turn, each in its own process; figures land in bench/results/*.json.

The CIFAR-10 runs take tens of minutes on 2 cores; `python -m bench.run_all --skip cifar10_seeds` leaves out the
longest one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

BENCHMARKS = [
    "reference_step",  # reference training step vs PyTorch CPU, per-layer split
    "kit_step",  # the course kit + good_vectorized.py step vs PyTorch and the reference
    "sandbox_overhead",  # empty-job overhead and correctness stage end to end, docker and bwrap
    "correctness_latency",  # correctness stage end to end, subprocess and docker
    "service_load",  # 200 submissions through API, broker, workers, store
    "dashboard_pages",  # dashboard pages, charts and badges on 200 students x 5 graded submissions
    "cifar10_speed_probe",  # the loop-style file stopped by the speed probe, with the per-layer explanation
    "cifar10_reference",  # full CIFAR-10 run of good_vectorized.py in the sandbox, graded outside
    "cifar10_seeds",  # reference accuracy over 3 seeds (mean, spread)
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=None)
    parser.add_argument("--skip", nargs="+", choices=BENCHMARKS, default=[])
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or BENCHMARKS:
        if name in args.skip:
            continue
        print(f"\n=== bench.{name}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(f"=== bench.{name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
