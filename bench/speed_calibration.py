"""The speed probe's yardstick: what a training step costs in yardsticks, for the reference and for a good file.

The yardstick (sandbox/harness/calibration.py) is the matrix products of one vectorized SimpleCNN step on 32
images. This times it interleaved with one reference training step (bench.reference_step) and one course-kit step with
tests/fixtures/submissions/good_vectorized.py (bench.kit_step), so that load from other processes hits all three
alike, and reports each step in yardsticks (median of the per-round ratios) and the yardstick's own time here. On an
idle machine that time is what `grader.training.recipe.REFERENCE_YARDSTICK_SECONDS` should be (the harness measures
it inside the Docker sandbox, where the probe event's `yardstick_ms` shows it: 25.5 ms there vs 20.9 ms here on
2026-12-01, so the constant takes the sandbox's figure).
Usage: python -m bench.speed_calibration [--rounds 30] [--burners 0]
"""

from __future__ import annotations

import os

THREADS = 2
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench.kit_step import DataParallelKitStep, load_submission  # noqa: E402
from bench.reference_step import reference_step  # noqa: E402
from grader.training.recipe import ARCHITECTURES, REFERENCE_YARDSTICK_SECONDS  # noqa: E402
from reference import simple_cnn  # noqa: E402
from sandbox.harness.calibration import YARDSTICK_BATCH, Yardstick, matmul_shapes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "speed_calibration.json"
GOOD = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
BATCH = 128


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--burners", type=int, default=0, help="CPU-bound processes to run beside it")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    try:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
        labels = rng.integers(0, 10, BATCH)
        params, state = simple_cnn.init_params(0, np.float32), {}
        kit_step = DataParallelKitStep(load_submission(GOOD), x, labels)  # as the harness trains it
        yardstick = Yardstick(matmul_shapes(ARCHITECTURES["simple_cnn"].as_recipe(), YARDSTICK_BATCH))
        steps = {"reference": lambda: reference_step(params, state, x, labels), "good_vectorized": kit_step}
        for step in steps.values():
            step()
        ratios: dict[str, list[float]] = {name: [] for name in steps}
        yardsticks = []
        for _ in range(args.rounds):
            for name, step in steps.items():
                before = yardstick.measure()
                seconds = _timed(step)
                ratios[name].append(seconds / ((before + yardstick.measure()) / 2))
                yardsticks.append(before)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    units = {name: round(statistics.median(values), 3) for name, values in ratios.items()}
    result = {
        "benchmark": "speed_calibration", "rounds": args.rounds, "burners": args.burners,
        "load_average": os.getloadavg(), "threads": THREADS,
        "yardstick_gflop": round(yardstick.flops / 1e9, 3),
        "yardstick_ms_median_here": round(statistics.median(yardsticks) * 1000, 2),
        "yardstick_ms_min_here": round(min(yardsticks) * 1000, 2),
        "step_units_median": units,
        "step_units_p10_p90": {name: [round(float(np.percentile(values, q)), 3) for q in (10, 90)]
                               for name, values in ratios.items()},
        "yardstick_seconds_if_idle": round(statistics.median(yardsticks), 4) if os.getloadavg()[0] <= 1.5 else None,
        "configured_reference_yardstick_seconds": REFERENCE_YARDSTICK_SECONDS,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
