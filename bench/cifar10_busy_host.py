"""The good fixture's full CIFAR-10 stage with two CPU-bound processes running beside it on the host.

Issue 11: with two busy processes on the host the correct, vectorized tests/fixtures/submissions/good_vectorized.py
was stopped by the speed probe after about a minute with 0 of 40 points. This grades it with the default spec
(production budget, probe and wall limit) in the Docker sandbox while two `while True: pass` processes run, and
records the verdict: the points, the probe's step cost in yardsticks and load factor, the reference seconds charged,
the wall time. A host too slow to finish in time ends as an infrastructure fault (rescheduled), never as a grade:
that outcome is recorded too. Writes bench/results/cifar10_busy_host.json.
Usage: python -m bench.cifar10_busy_host [--burners 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from grader.training.evaluation import ensure_dataset
from grader.pipeline import grade_submission
from grader.settings import get_settings
from grader.spec import load_spec
from sandbox.runner import InfrastructureError
from sandbox.select import select_runner

ROOT = Path(__file__).resolve().parent.parent
SUBMISSION = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
RESULTS = ROOT / "bench" / "results" / "cifar10_busy_host.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--sandbox", default="docker")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    settings = get_settings()
    ensure_dataset(settings)
    runner = select_runner(settings, args.sandbox)
    events: list[dict] = []

    def on_event(event: dict) -> None:
        if event.get("stage") == "cifar10" and event.get("event") in ("epoch", "probe", "stopped", "done"):
            events.append(event)
            print(json.dumps(event), flush=True)

    load_start = os.getloadavg()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
    started = time.perf_counter()
    report: dict = {"benchmark": "cifar10_busy_host", "burners": args.burners, "backend": runner.name,
                    "load_average_at_start": load_start}
    try:
        result = grade_submission(SUBMISSION.read_bytes(), spec=load_spec(), runner=runner, on_event=on_event,
                                  settings=settings)
        stage = next(s for s in result.stages if s.name == "cifar10")
        report.update(outcome="graded", status=stage.status, score=stage.score, max_score=stage.max_score,
                      test_accuracy=stage.details.get("cifar10", {}).get("test_accuracy"), message=stage.message)
    except InfrastructureError as error:
        report.update(outcome="infrastructure (rescheduled, no grade)", message=str(error))
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    report.update(wall_seconds=round(time.perf_counter() - started, 1), load_average_at_end=os.getloadavg(),
                  probe=next((e for e in events if e.get("event") == "probe"), None),
                  last_epoch=next((e for e in reversed(events) if e.get("event") == "epoch"), None),
                  stopped=next((e for e in events if e.get("event") == "stopped"), None))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps({k: v for k, v in report.items() if k != "message"}, indent=2, default=str))
    print(report.get("message", ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
