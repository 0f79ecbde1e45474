"""Where a correctness job's time goes in the Docker sandbox (issue 14: measure, do not assume).

Run: `.venv/bin/python -m bench.correctness_phases [--runs 10]`. Prints medians and writes
bench/results/correctness_phases.json, with the load average before and after:

- per job of `good_vectorized.py`'s correctness stage, on the host clock: preparing the job directory, the
  engine's create and start calls, start -> the harness's first progress line (Python start, NumPy, the kit, the
  inputs and the student's import), the checks themselves, last line -> exit seen, inspect + logs, removal;
- inside one container, the cost of each start-up layer alone: `python3 -I -c pass`, + `import numpy`, + the kit,
  timed by a process that starts them (so no container cost is included);
- the engine's own CPU time per empty job (dockerd, containerd and live shims: a lower bound), which a pool of
  pre-started containers moves off the job's path but does not save;
- with `--warm N` also the same job through a pool of N pre-started containers (setting `sandbox_warm_containers`),
  each job given the time to start the container behind it (the case of a worker that is not saturated); there
  `prepare_s` is the submission and inputs written into the waiting container's directory, and
  `to_first_progress_s` counts from the job's arrival.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from bench.machine_load import load_average

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "correctness_phases.json"
GOOD = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
IDLE_GAP_SECONDS = 1.5  # time between jobs in the warm measurement: a worker that is not saturated
ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "runc", "docker-init")
LAYERS = '''
import json, os, subprocess, time
def wall(code, repeats=5):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(["python3", "-I", "-c", code], check=True, env={"PYTHONPATH": "/opt/kit",
                       "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]
kit = "import sys; sys.path.insert(0, '/opt/kit'); import numpy; import tinytorch; from tinytorch.core.tensor import Tensor"
result = {"python_s": wall("pass"), "python_numpy_s": wall("import numpy"), "python_numpy_kit_s": wall(kit)}
with open("/job/out/result.bin", "w") as handle:
    json.dump(result, handle)
os._exit(0)
'''


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 4) if values else None


class PhaseClock:
    """Times the Docker SDK calls a job makes and the progress lines it sends, on the host clock."""

    def __init__(self) -> None:
        import docker.models.containers as containers

        self.marks: dict[str, float] = {}
        self.spans: dict[str, float] = {}
        self._patch(containers.ContainerCollection, "create")
        for name in ("start", "reload", "logs", "remove", "wait"):
            self._patch(containers.Container, name)

    def _patch(self, cls, name: str) -> None:
        original = getattr(cls, name)
        clock = self

        def timed(*args, **kwargs):
            if threading.current_thread().name == "warm-sandboxes":
                return original(*args, **kwargs)  # the pool starting the next container, not this job
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                clock.spans[name] = clock.spans.get(name, 0.0) + time.perf_counter() - began
                clock.marks.setdefault(f"{name}_began", began)
                clock.marks[f"{name}_ended"] = time.perf_counter()

        setattr(cls, name, timed)

    def on_progress(self, line: str) -> None:
        now = time.perf_counter()
        self.marks.setdefault("first_progress", now)
        if '"done"' in line:
            self.marks["done"] = now

    def reset(self) -> None:
        self.marks, self.spans = {}, {}


def job_phases(runner, clock: PhaseClock, job) -> dict[str, float]:
    pool = getattr(runner, "warm_pool", None)
    deadline = time.monotonic() + 30
    while pool is not None and pool.ready.qsize() < pool.size and time.monotonic() < deadline:
        time.sleep(0.05)  # the idle case: the pool had time to start the container behind the last one
    if pool is not None:
        time.sleep(IDLE_GAP_SECONDS)  # ... and its Python to reach the FIFO
    clock.reset()
    began = time.perf_counter()
    outcome = runner.run(job, on_progress=clock.on_progress)
    ended = time.perf_counter()
    assert outcome.status == "ok", (outcome.status, outcome.log_tail)
    m, s = clock.marks, clock.spans
    cold = "create" in s
    return {"prepare_s": m["create_began"] - began if cold else None,
            "create_s": s.get("create", 0.0), "start_s": s.get("start", 0.0),
            "to_first_progress_s": m["first_progress"] - (m["start_ended"] if cold else began),
            "checks_s": m["done"] - m["first_progress"], "exit_seen_s": m["wait_ended"] - m["done"],
            "inspect_logs_s": s["reload"] + s["logs"], "remove_s": s["remove"], "total_s": ended - began}


def engine_cpu_seconds() -> float:
    """CPU seconds of the engine's live processes. A lower bound per job: runc and a removed container's shim are
    gone before the second reading (reparented, not reaped by the engine), so their share is not seen."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            if name not in ENGINE_PROCESSES and not name.startswith("containerd-shim"):
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def correctness_job(settings):
    from grader.spec import load_spec
    from grader.stages import correctness

    from sandbox.runner import SandboxJob

    spec = load_spec()
    options = spec.catalogue_options
    runs = correctness.prepared_runs(spec.correctness.seed, spec.correctness.case_seconds, options)
    return SandboxJob(harness="correctness", submission=GOOD.read_bytes(), inputs=correctness.job_inputs(runs, options),
                      limits=settings.sandbox_limits(**spec.correctness.limits))


def measure(runner, settings, runs: int, warm: int = 0) -> dict:
    from sandbox.runner import SandboxJob

    job = correctness_job(settings)
    if warm:
        runner.keep_warm(job, warm)
    clock = PhaseClock()
    job_phases(runner, clock, job)  # warm-up
    samples = [job_phases(runner, clock, job) for _ in range(runs)]
    phases = {key: median([sample[key] for sample in samples if sample[key] is not None]) for key in samples[0]}
    layers = json.loads(runner.run(SandboxJob("smoke", LAYERS.encode(), limits=settings.sandbox_limits())).result)
    empty = SandboxJob("smoke", b"import os\nos._exit(0)\n", limits=settings.sandbox_limits())
    cpu_before, wall_before = engine_cpu_seconds(), time.perf_counter()
    for _ in range(runs):
        runner.run(empty)
    engine = {"engine_cpu_s_per_empty_job_lower_bound": round((engine_cpu_seconds() - cpu_before) / runs, 4),
              "empty_job_wall_s": round((time.perf_counter() - wall_before) / runs, 4)}
    return {"phases_median": phases, "startup_layers_in_container": layers, **engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warm", type=int, default=0, help="also measure through a warm pool of this many")
    args = parser.parse_args()
    from grader.settings import get_settings
    from sandbox.select import select_runner

    settings = get_settings()
    report = {"load_before": round(load_average(), 2)}
    report["cold"] = measure(select_runner(settings, "docker"), settings, args.runs)
    if args.warm:
        runner = select_runner(settings, "docker")
        report["warm"] = measure(runner, settings, args.runs, warm=args.warm)
        runner.keep_warm(correctness_job(settings), 0)
    report["load_after"] = round(load_average(), 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
