"""A private Docker engine for CPU measurements, alone in its cgroup and under its own reaper (issue 14).

Run as root: `python -m bench.private_engine [NAME]` (default "bench") starts `dockerd` with its own data root,
exec root and socket (/var/run/docker-NAME.sock), containers in the cpuacct cgroup /NAME, and the engine's default
options of scripts/ensure_services.sh (crun when installed). This process stays as the engine's child subreaper:
the containerd shims it is left with are reaped here, so their CPU is this process's children's time. It prints
the two variables bench/cpu_accounting.py reads, e.g.

    DOCKER_HOST=unix:///var/run/docker-bench.sock BENCH_PRIVATE_ENGINE=bench:12345

then load the sandbox image into it (`docker save IMAGE | DOCKER_HOST=... docker load`). SIGTERM stops the engine.
The shared engine is left alone.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36


def engine_argv(name: str) -> list[str]:
    runtime = ["--add-runtime", f"crun={shutil.which('crun')}", "--default-runtime", "crun"] \
        if shutil.which("crun") else []
    return ["dockerd", "--iptables=false", "--bridge=none", *runtime, f"--data-root=/var/lib/docker-{name}",
            f"--exec-root=/var/run/docker-{name}", f"--pidfile=/var/run/docker-{name}.pid",
            "-H", f"unix:///var/run/docker-{name}.sock", f"--cgroup-parent=/{name}"]


def main(argv: list[str] | None = None) -> None:
    name = (argv if argv is not None else sys.argv[1:] or ["bench"])[0]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("could not become a child subreaper")
    Path(f"/sys/fs/cgroup/cpuacct/{name}").mkdir(exist_ok=True)  # cgroup v1, as cpu_accounting reads it
    log = open(f"/tmp/dockerd-{name}.log", "ab")
    engine = subprocess.Popen(engine_argv(name), stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    print(f"DOCKER_HOST=unix:///var/run/docker-{name}.sock BENCH_PRIVATE_ENGINE={name}:{os.getpid()}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: engine.terminate())
    while True:  # reap the engine's orphans (its shims) until the engine itself has ended
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == engine.pid:
            return


if __name__ == "__main__":
    main()
