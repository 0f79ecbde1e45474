"""How busy the machine is, so that benchmarks print each figure beside the load and withhold ratios on a busy one.

Two measures:
- the 1-minute load average (`os.getloadavg`), printed beside every figure. A benchmark's own threads raise it
  too, so the gate reads it *before* a measurement starts;
- the CPU time other processes used *during* a measurement, in cores: busy time of the whole machine from
  /proc/stat minus this process's own CPU time. A ratio is only honest when the other side had the cores too.

A ratio is reported when the load average before the run is at most LOAD_LIMIT and the others used at most
OTHERS_LIMIT cores on average while it ran; otherwise the benchmark says why it withholds it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

LOAD_LIMIT = 1.5  # 1-minute load average above which no ratio is reported (the rule)
OTHERS_LIMIT = 0.3  # cores used by other processes, on average during the run, above which neither is
QUIET_WAIT_SECONDS = 600.0  # how long `wait_until_quiet` waits by default
POLL_SECONDS = 15.0
YARDSTICK_ROUNDS = 5
# The machine's yardstick, run in a fresh interpreter: the CPU time of `import numpy` (what every sandboxed job pays
# first) and of a fixed pure-Python loop (what the API and the worker mostly are), each its own process's CPU.
YARDSTICK_CODE = """
import resource, sys
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started = cpu()
import numpy
imported = cpu()
total = 0
for index in range(2_000_000):
    total += index % 7
print(imported - started, cpu() - imported)
"""


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def _busy_seconds() -> float | None:
    """Non-idle CPU seconds of the whole machine since boot (None where /proc/stat is missing)."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(value) for value in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    busy = sum(values[:8]) - idle  # user nice system idle iowait irq softirq steal; guest is inside user
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@dataclass
class Window:
    """One measurement window: the load before it and the CPU other processes used while it ran."""

    load_before: float
    started: float
    busy_before: float | None
    own_before: float
    load_after: float | None = None
    others_cores: float | None = None

    def close(self) -> "Window":
        elapsed = max(time.monotonic() - self.started, 1e-9)
        busy = _busy_seconds()
        self.load_after = load_average()
        if busy is not None and self.busy_before is not None:
            others = (busy - self.busy_before) - (_own_cpu_seconds() - self.own_before)
            self.others_cores = max(0.0, others / elapsed)
        return self

    @property
    def quiet(self) -> bool:
        return self.load_before <= LOAD_LIMIT and (self.others_cores is None or self.others_cores <= OTHERS_LIMIT)

    def why_busy(self) -> str:
        reasons = []
        if self.load_before > LOAD_LIMIT:
            reasons.append(f"load average {self.load_before:.2f} > {LOAD_LIMIT} before the run")
        if self.others_cores is not None and self.others_cores > OTHERS_LIMIT:
            reasons.append(f"other processes used {self.others_cores:.2f} cores during it (> {OTHERS_LIMIT})")
        return "; ".join(reasons)

    def describe(self) -> str:
        others = "" if self.others_cores is None else f", others {self.others_cores:.2f} cores"
        after = "" if self.load_after is None else f" -> {self.load_after:.2f}"
        return f"load {self.load_before:.2f}{after}{others}"

    def as_dict(self) -> dict:
        return {"load_average_before": round(self.load_before, 2),
                "load_average_after": None if self.load_after is None else round(self.load_after, 2),
                "other_processes_cores": None if self.others_cores is None else round(self.others_cores, 3),
                "quiet": self.quiet, "load_limit": LOAD_LIMIT, "others_limit_cores": OTHERS_LIMIT}


def open_window() -> Window:
    """Start a measurement window (call `.close()` when the measurement ends)."""
    return Window(load_average(), time.monotonic(), _busy_seconds(), _own_cpu_seconds())


def wait_until_quiet(limit: float = LOAD_LIMIT, timeout_s: float = QUIET_WAIT_SECONDS, log=print) -> bool:
    """Wait (up to timeout_s) until the load average is at most `limit`; True if it got there."""
    deadline = time.monotonic() + timeout_s
    while True:
        load = load_average()
        if load <= limit:
            return True
        if time.monotonic() >= deadline:
            log(f"load average still {load:.2f} > {limit} after waiting {timeout_s:.0f} s")
            return False
        pause = min(POLL_SECONDS, max(0.0, deadline - time.monotonic()))
        log(f"load average {load:.2f} > {limit}: waiting {pause:.0f} s for a quieter machine")
        time.sleep(pause)


def measure_quietly(measure, *, retries: int, wait_s: float, log=print):
    """Run `measure()` inside a window; on a busy machine wait for a quiet one and measure again (up to `retries`).

    Returns (what the last measure() returned, its window, attempts made).
    """
    attempt = 0
    while True:
        attempt += 1
        window = open_window()
        result = measure()
        window.close()
        if window.quiet or attempt > retries:
            return result, window, attempt
        log(f"busy machine ({window.why_busy()}): waiting for a quiet one, then measuring again")
        wait_until_quiet(timeout_s=wait_s, log=log)


def ratio_text(value: float, window: Window, target: float | None = None) -> str:
    """'1.12x (load ...)' when the window was quiet, else a sentence saying why no ratio is given."""
    goal = "" if target is None else f", target <= {target}x"
    if window.quiet:
        return f"{value:.2f}x ({window.describe()}{goal})"
    return f"not reported: {window.why_busy()} (measured {value:.2f}x; {window.describe()})"


def machine_yardstick(rounds: int = YARDSTICK_ROUNDS) -> dict:
    """How fast this machine is today, in CPU seconds (medians of `rounds` fresh interpreters): `import numpy` and a
    2-million-step Python loop. Two sessions' machines differed by 1.4x in both with unchanged code (issue 14), so a
    CPU-per-grade figure is only comparable beside the yardstick of the machine it was measured on."""
    imports, loops = [], []
    for _ in range(rounds):
        done = subprocess.run([sys.executable, "-I", "-c", YARDSTICK_CODE], capture_output=True, text=True,
                              check=True, env={"OPENBLAS_NUM_THREADS": "1", "PATH": os.environ.get("PATH", "")})
        numpy_seconds, loop_seconds = (float(value) for value in done.stdout.split())
        imports.append(numpy_seconds)
        loops.append(loop_seconds)
    return {"numpy_import_cpu_s": round(statistics.median(imports), 4),
            "python_loop_cpu_s": round(statistics.median(loops), 4), "rounds": rounds}
