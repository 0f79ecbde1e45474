"""CPU seconds by part of the stack during a measurement: where the two cores go per grade (issue 14: measure).

On 2 cores throughput is CPU-bound, so the question per grade is how much CPU each part burns, not how long a
job takes on the clock. Parts, from /proc (Linux only; None elsewhere):

- `api`, `worker`: the uvicorn / Celery process trees started by the benchmark (live processes' own time plus what
  they reaped from exited children);
- `sandboxes`: the processes inside the job containers, from the engine's cgroup (`cpuacct` of v1's `docker`
  group or v2's `system.slice`/`docker` slices); it keeps the usage of removed containers;
- the engine: `dockerd` and `containerd` (live), and `shims_and_runc`: containerd-shim and runc processes exit
  and are reparented to init, so their time lands in init's children's time. A shim reaps its container's
  processes, so that time includes the sandboxes' own, which is taken off (other orphans of the machine are in it
  too: an upper bound);
- `postgres`, `redis`: the servers, their live backends plus the backends the postmaster reaped.

Other agents' work is in none of these except where it shares a server (Postgres, the engine): read the figures
beside the load average. A private engine avoids that for the engine's parts: started with `--cgroup-parent
/NAME` under a child subreaper (a process that set PR_SET_CHILD_SUBREAPER and reaps what is reparented to it,
i.e. its shims), `BENCH_PRIVATE_ENGINE=NAME:REAPER_PID` makes the sandboxes `cpuacct/NAME`, dockerd and
containerd the ones below the reaper, and the shims and runc what the reaper reaped.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
CGROUP_USAGE_FILES = ("/sys/fs/cgroup/cpuacct/docker/cpuacct.usage", "/sys/fs/cgroup/cpu,cpuacct/docker/cpuacct.usage")
CGROUP_V2_STATS = ("/sys/fs/cgroup/system.slice/cpu.stat", "/sys/fs/cgroup/docker/cpu.stat")
ENGINE_NAMES = ("dockerd", "containerd")


def _stat(pid: int) -> tuple[str, int, float, float] | None:
    """(command, parent pid, own CPU seconds, reaped children's CPU seconds) of a process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1:text.rindex(")")]
    fields = text[text.rindex(")") + 2:].split()
    own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return name, int(fields[1]), own, reaped


def _processes() -> dict[int, tuple[str, int, float, float]]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                table[int(entry)] = stat
    return table


def _tree(table: dict, root: int) -> float:
    """CPU of `root` and its live descendants, plus what each reaped."""
    children: dict[int, list[int]] = {}
    for pid, (_, parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            total += table[pid][2] + table[pid][3]
        stack.extend(children.get(pid, []))
    return total


def _sandbox_seconds() -> float | None:
    for path in CGROUP_USAGE_FILES:
        try:
            return int(Path(path).read_text()) / 1e9
        except OSError:
            continue
    for path in CGROUP_V2_STATS:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith("usage_usec"):
                    return int(line.split()[1]) / 1e6
        except OSError:
            continue
    return None


def snapshot(roots: dict[str, int]) -> dict[str, float | None] | None:
    """CPU seconds so far per part; `roots` names the process trees started by the benchmark (name -> pid)."""
    if not Path("/proc/1/stat").exists():
        return None
    table = _processes()
    parts: dict[str, float | None] = {name: _tree(table, pid) for name, pid in roots.items()}
    private = os.environ.get("BENCH_PRIVATE_ENGINE", "")
    if private:
        parts.update(_private_engine(table, *private.split(":")))
    else:
        parts["sandboxes"] = _sandbox_seconds()
        for daemon in ENGINE_NAMES:
            parts[daemon] = sum(own + reaped for name, _, own, reaped in table.values() if name == daemon)
        parts["reaped_by_init"] = table[1][3] if 1 in table else 0.0  # exited shims and runc (and other orphans)
    for server in ("postgres", "redis-server"):
        parts[server.split("-")[0]] = sum(own + (reaped if parent == 1 else 0.0)
                                          for name, parent, own, reaped in table.values() if name == server)
    return parts


def _private_engine(table: dict, cgroup: str, reaper: str) -> dict[str, float]:
    """The engine's parts of a private engine (see the module doc); "reaped_by_init" is the reaper's here."""
    usage = int(Path(f"/sys/fs/cgroup/cpuacct/{cgroup}/cpuacct.usage").read_text()) / 1e9

    def below_reaper(pid: int) -> bool:
        while pid in table and pid > 1:
            if pid == int(reaper):
                return True
            pid = table[pid][1]
        return False

    engine = {daemon: sum(own + reaped for pid, (name, _, own, reaped) in table.items()
                          if name == daemon and below_reaper(pid)) for daemon in ENGINE_NAMES}
    return {"sandboxes": usage, **engine, "reaped_by_init": table[int(reaper)][3]}


def per_item(before: dict | None, after: dict | None, items: int) -> dict[str, float] | None:
    """CPU seconds per item (e.g. per grade) of each part between two snapshots, and their total (shims apart)."""
    if not before or not after or items <= 0:
        return None
    spent = {name: (after[name] - before[name]) / items for name in after
             if after.get(name) is not None and before.get(name) is not None}
    reaped = spent.pop("reaped_by_init", None)
    if reaped is not None:
        spent["shims_and_runc"] = max(0.0, reaped - spent.get("sandboxes", 0.0))
    spent = {name: round(value, 4) for name, value in spent.items()}
    # Without the shims: init also reaps other work's orphans (another user's test run), which can swamp them.
    spent["total"] = round(sum(value for name, value in spent.items() if name != "shims_and_runc"), 4)
    return spent
