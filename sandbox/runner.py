"""The runner interface every isolation backend implements (docker, bwrap, and an unsafe subprocess one for tests).

A job walks through prepare -> copy in -> run -> copy out -> destroy. Inside the sandbox the layout is fixed,
whatever the backend:

    /opt/kit/tinytorch/...        the course kit (read-only)
    /opt/harness/<name>.py        the in-sandbox harnesses (read-only)
    /job/submission/spatial.py    the student's file (read-only)
    /job/inputs/<file>            the job's input files (read-only)
    /job/data/<dir>               optional read-only data directories (e.g. the prepared CIFAR-10 cache)
    /job/out/result.bin           the single size-capped result file (the only writable place besides /tmp)
    /job/out/progress.jsonl       size-capped progress lines, readable while the job runs
    /tmp                          small size-capped scratch space

The harness is started as `python3 -I /opt/harness/<name>.py` with paths given by the `HarnessPaths` argv
(see `harness_argv`), so the same harness runs under every backend.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Protocol

# Every harness is started by this small script of its folder, which runs it as __main__ from the bytecode compiled
# into the image: a script handed to python3 itself is compiled from source in every job (correctness.py ~10 ms of
# CPU, training.py ~20 ms, measured on the host).
HARNESS_LAUNCHER = "start.py"

GiB = 1024**3
MiB = 1024**2
KiB = 1024

OutcomeStatus = Literal["ok", "exited", "timeout", "memory", "output_limit", "crashed"]


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one job. Every field is a setting; these are the defaults."""

    memory_bytes: int = 1 * GiB  # memory and memory+swap are equal: no swap
    cpus: float = 1.0  # CPU quota in cores
    pids: int = 64  # processes and threads
    wall_seconds: float = 60.0  # wall-clock timeout, after which the job is killed
    output_bytes: int = 32 * MiB  # cap of result.bin
    progress_bytes: int = 1 * MiB  # cap of progress.jsonl
    tmpfs_bytes: int = 64 * MiB  # size of /tmp
    nofile: int = 256  # open files
    fsize_bytes: int = 64 * MiB  # largest file a process may write
    threads: int = 1  # BLAS / OpenMP threads inside the job
    log_tail_bytes: int = 8 * KiB  # how much of the job's stdout+stderr comes back in SandboxOutcome.log_tail
    cpu_shares: int = 1024  # relative CPU weight when jobs compete for cores (docker --cpu-shares; 1024 = normal)
    # Whether cpu_shares is weighed against every process of the host (the engine, the workers, the database)
    # rather than only against the engine's other containers; see DockerRunner.cgroup_parent.
    cpu_shares_host_wide: bool = False


@dataclass(frozen=True)
class SandboxJob:
    """What one run of student code needs.

    Fields:
        harness: name of a harness in `sandbox/harness/` (without `.py`), e.g. "correctness" or "training".
        submission: the student's file, bytes as uploaded.
        inputs: file name -> content, placed read-only in /job/inputs.
        data_dirs: name -> host directory, mounted read-only at /job/data/<name>.
        limits: resource limits of this job.
        args: extra command-line arguments passed to the harness after the standard ones.
        log_tail_when_ok: False when nobody reads the log of a job that exits 0: such a job comes back with an
            empty `log_tail`, which spares the Docker backend its engine logs call (issue 14). A job that fails in
            any way still brings its log tail back.
    """

    harness: str
    submission: bytes
    inputs: dict[str, bytes] = field(default_factory=dict)
    data_dirs: dict[str, Path] = field(default_factory=dict)
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    args: tuple[str, ...] = ()
    log_tail_when_ok: bool = True


@dataclass(frozen=True)
class SandboxOutcome:
    """What came back from one job. Nothing here is trusted: the caller validates `result` itself.

    Fields:
        status: "ok" (exit 0), "exited" (non-zero exit), "timeout" (killed at the wall-clock limit),
            "memory" (killed for using more than the memory limit), "output_limit" (result or progress
            over its cap), "crashed" (killed by a signal other than the above, e.g. a segfault).
        exit_code: the process's exit code, or None when it was killed by the runner.
        duration_s: wall time from start to removal.
        result: the bytes of /job/out/result.bin, at most `limits.output_bytes`.
        log_tail: the last `limits.log_tail_bytes` of the job's stdout and stderr, for diagnostics only.
        backend: the backend's name; image_digest: the sandbox image (docker) or "" (others).
    """

    status: OutcomeStatus
    exit_code: int | None
    duration_s: float
    result: bytes
    log_tail: str
    backend: str
    image_digest: str = ""


class InfrastructureError(RuntimeError):
    """The sandbox itself failed on the trusted side (engine unreachable or erroring, a timeout talking to it,
    an OS error preparing or reading the job, image missing): retry, never the student's fault."""


ProgressCallback = Callable[[str], None]


class SandboxRunner(Protocol):
    """One isolation backend."""

    name: str

    def run(self, job: SandboxJob, on_progress: ProgressCallback | None = None) -> SandboxOutcome:
        """Run the job to completion; `on_progress` gets each complete line of progress.jsonl as it appears."""
        ...


def harness_argv(harness_file: str, *, python: str = "python3", kit: str, submission: str, inputs: str, data: str, out: str,
                 args: tuple[str, ...] = (), launcher: str = HARNESS_LAUNCHER,
                 launcher_args: tuple[str, ...] = ()) -> list[str]:
    """The command line of a harness, the same under every backend (paths differ only outside containers): the
    `launcher` of the harness's folder runs it (sandbox/harness/start.py, or warm_start.py with its FIFO)."""
    launcher_file = posixpath.join(posixpath.dirname(harness_file), launcher)
    return [python, "-I", launcher_file, *launcher_args, harness_file, "--kit", kit, "--submission", submission,
            "--inputs", inputs, "--data", data, "--out", out, *args]


HARNESS_DIR = Path(__file__).resolve().parent / "harness"
KIT_DIR = Path(__file__).resolve().parent.parent / "reference" / "kit"
