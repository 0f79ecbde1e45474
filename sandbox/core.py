"""What every backend shares (Tango's `sharedUtils`): the job's command line and environment, the wait loop with
its wall clock and progress tail, the log tail, outcome classification, and the rule that a fault on the trusted
side is an `InfrastructureError`.

A backend file holds only what differs: how a job is started, waited for, killed, inspected and destroyed (a
`StartedJob`). `run_job` walks every job through the same steps, so a status means the same on every backend.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Protocol

from sandbox.harness.harness_common import MEMORY_ERROR_EXIT_CODE
from sandbox.runner import (InfrastructureError, OutcomeStatus, ProgressCallback, SandboxJob, SandboxLimits,
                            SandboxOutcome, harness_argv)

# Exit codes follow the shell's convention on every backend: death by signal N is 128 + N.
SIGNAL_EXIT_BASE = 128
SIGXFSZ_EXIT = SIGNAL_EXIT_BASE + signal.SIGXFSZ  # wrote a file over RLIMIT_FSIZE
SIGXCPU_EXIT = SIGNAL_EXIT_BASE + signal.SIGXCPU  # used its CPU-seconds rlimit (the unsafe backend's backstop)
SIGKILL_EXIT = SIGNAL_EXIT_BASE + signal.SIGKILL
# How often the wall clock and the progress file are looked at while a job runs.
POLL_SECONDS = 0.05
# How long a killed job may take to be reported dead before that is the runner's fault.
KILL_GRACE_SECONDS = 10.0
# "MemoryError" this close to the end of the log means the job died of it (RLIMIT_AS backends raise it instead
# of an OOM kill).
MEMORY_ERROR_TAIL_CHARS = 300
# If the host itself runs short of memory, the kernel kills a job before the grader, the database or the engine.
OOM_SCORE_ADJ = 1000

# The same paths inside every sandbox (see sandbox/runner.py for the layout).
SANDBOX_KIT = "/opt/kit"
SANDBOX_HARNESS_DIR = "/opt/harness"
SANDBOX_SUBMISSION = "/job/submission/spatial.py"
SANDBOX_INPUTS = "/job/inputs"
SANDBOX_DATA = "/job/data"
SANDBOX_OUT = "/job/out"


def check_job(job: SandboxJob) -> None:
    """Refuses names that could reach outside the job's layout (a programming error, not a student's)."""
    if not job.harness.isidentifier():
        raise ValueError(f"harness names are plain module names, got {job.harness!r}")
    for name in list(job.inputs) + list(job.data_dirs):
        check_plain_name(name)


def check_plain_name(name: str) -> None:
    if "/" in name or name in ("", ".", "..") or name.startswith("."):
        raise ValueError(f"job file and directory names must be plain names, got {name!r}")


def sandbox_argv(job: SandboxJob, *, python: str = "python3", **launcher) -> list[str]:
    """The harness command line as seen inside a container or bwrap sandbox (`launcher`: harness_argv's)."""
    return harness_argv(f"{SANDBOX_HARNESS_DIR}/{job.harness}.py", python=python, kit=SANDBOX_KIT,
                        submission=SANDBOX_SUBMISSION, inputs=SANDBOX_INPUTS, data=SANDBOX_DATA, out=SANDBOX_OUT,
                        args=job.args, **launcher)


# glibc keeps freed large blocks for reuse (no mmap per array, heap never trimmed) in one arena for all threads
# (a thread's own arena gives its heaps back whatever the trim setting); the same as
# reference.parallel.reuse_freed_memory, set through the environment because the job's process is the student's.
MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=2147483647:glibc.malloc.arena_max=1"


def job_environment(limits: SandboxLimits, *, home: str = "/tmp") -> dict[str, str]:
    """The job's whole environment: nothing of the host's (no secrets, no database or broker URLs)."""
    threads = str(max(1, int(limits.threads)))
    return {"OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            # Speed of the student's NumPy, not safety: OpenBLAS's idle worker otherwise spins ~0.1 s after every
            # matmul, burning the job's CPU quota; glibc otherwise maps and page-faults every large array afresh
            # (a training step allocates ~200 MB). Measured: 10-15% of a training step (reference/parallel.py).
            "OPENBLAS_THREAD_TIMEOUT": "4", "GLIBC_TUNABLES": MALLOC_TUNABLES,
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1"}


@contextlib.contextmanager
def infrastructure_faults(what: str, *errors: type[BaseException]) -> Iterator[None]:
    """Turns OS errors (and the backend's own engine errors) on the trusted side into InfrastructureError.

    Everything the student's code does ends as a status; an exception here is the machine's fault, retried later.
    """
    try:
        yield
    except InfrastructureError:
        raise
    except (OSError, *errors) as error:
        raise InfrastructureError(f"{what}: {type(error).__name__}: {error}") from error


class ProgressTail:
    """Follows a job's progress.jsonl: complete lines as they appear, never reading past the cap."""

    def __init__(self, path: Path, cap_bytes: int) -> None:
        self.path, self.cap_bytes = path, cap_bytes
        self.offset = 0
        self.pending = b""

    def over_cap(self) -> bool:
        try:
            return os.lstat(self.path).st_size > self.cap_bytes
        except FileNotFoundError:
            return False

    def read_lines(self) -> list[str]:
        remaining = self.cap_bytes - self.offset
        if remaining <= 0:
            return []
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(min(remaining, 1 << 20))
        self.offset += len(chunk)
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines if line.strip()]


class LogTail:
    """Drains a job's stdout+stderr pipe to its end in a thread, keeping only the last `cap_bytes`."""

    def __init__(self, stream, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self.chunks: collections.deque[bytes] = collections.deque()
        self.kept = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self.thread.start()

    def _drain(self, stream) -> None:
        with stream:
            while chunk := stream.read1(65536):
                with self.lock:
                    self.chunks.append(chunk)
                    self.kept += len(chunk)
                    while self.chunks and self.kept - len(self.chunks[0]) >= self.cap_bytes:
                        self.kept -= len(self.chunks.popleft())

    def text(self, join_seconds: float = 2.0) -> str:
        self.thread.join(join_seconds)
        with self.lock:
            return b"".join(self.chunks)[-self.cap_bytes:].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class JobEnd:
    """How a job's process ended, as its backend saw it.

    Fields:
        exit_code: the exit code (128 + N for death by signal N), or None when it is unknown.
        oom_killed: the backend knows the job was killed for memory (Docker's OOMKilled, a cgroup's oom_kill).
        log_tail: the last bytes of stdout+stderr, at most `limits.log_tail_bytes`.
    """

    exit_code: int | None
    oom_killed: bool
    log_tail: str


class StartedJob(Protocol):
    """One running job, as a backend hands it to `run_job`."""

    def wait(self, seconds: float) -> bool:
        """Waits up to `seconds`; True once the job's process has ended."""
        ...

    def kill(self) -> None:
        """Kills every process of the job now."""
        ...

    def end(self) -> JobEnd:
        """How it ended (called once it has ended or was killed)."""
        ...

    def destroy(self) -> None:
        """Removes everything the job left on the host (always called, also when starting failed half-way)."""
        ...


class ProcessGroupJob:
    """A job run as a child process that leads its own process group (bwrap and the unsafe backend)."""

    def __init__(self, argv: list[str], limits: SandboxLimits, *, env: dict[str, str], preexec_fn,
                 cwd: Path | None = None) -> None:
        self.process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, preexec_fn=preexec_fn, start_new_session=True,
                                        close_fds=True)
        self.log = LogTail(self.process.stdout, limits.log_tail_bytes)

    def wait(self, seconds: float) -> bool:
        try:
            self.process.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        """Kills the whole process group (the child leads it), whatever it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def exit_code(self) -> int:
        returncode = self.process.returncode
        return SIGNAL_EXIT_BASE - returncode if returncode < 0 else returncode

    def end(self) -> JobEnd:
        self.kill()  # background processes of the job end with it
        return JobEnd(exit_code=self.exit_code(), oom_killed=False, log_tail=self.log.text())

    def destroy(self) -> None:
        self.kill()
        self.process.wait()


class JobFiles(Protocol):
    """The host side of the job's output files (sandbox.jobdir.JobDirectory)."""

    progress_path: Path

    def output_sizes(self) -> tuple[int, int]: ...

    def read_result(self, cap_bytes: int) -> bytes: ...


def classify(*, killed_for: OutcomeStatus | None, end: JobEnd, result_size: int, progress_size: int,
             limits: SandboxLimits) -> OutcomeStatus:
    """Maps how a job ended to an outcome status (see SandboxOutcome); the first cause that applies wins."""
    exit_code = end.exit_code
    if killed_for is not None:
        return killed_for
    if end.oom_killed:
        return "memory"
    if result_size > limits.output_bytes or progress_size > limits.progress_bytes or exit_code == SIGXFSZ_EXIT:
        return "output_limit"
    if exit_code == 0:
        return "ok"
    if exit_code == SIGXCPU_EXIT:
        return "timeout"
    if exit_code == MEMORY_ERROR_EXIT_CODE or (
            exit_code is not None and 0 < exit_code < SIGNAL_EXIT_BASE
            and "MemoryError" in end.log_tail[-MEMORY_ERROR_TAIL_CHARS:]):
        return "memory"
    if exit_code is not None and exit_code > SIGNAL_EXIT_BASE:
        return "crashed"
    return "exited"


def wait_to_end(started: StartedJob, progress: ProgressTail, limits: SandboxLimits,
                on_progress: ProgressCallback | None) -> OutcomeStatus | None:
    """Waits for the job, handing on progress lines; kills it at the wall clock or when progress is over its cap.

    Returns why the runner killed it ("timeout", "output_limit"), or None when it ended by itself.
    """
    deadline = time.monotonic() + limits.wall_seconds
    killed_for: OutcomeStatus | None = None
    while not started.wait(POLL_SECONDS):
        _deliver(progress, on_progress)
        if progress.over_cap():
            killed_for = "output_limit"
        elif time.monotonic() >= deadline:
            killed_for = "timeout"
        else:
            continue
        started.kill()
        if not started.wait(KILL_GRACE_SECONDS):
            raise InfrastructureError(f"the job did not end within {KILL_GRACE_SECONDS:g} s of being killed")
        break
    _deliver(progress, on_progress)
    return killed_for


def _deliver(progress: ProgressTail, on_progress: ProgressCallback | None) -> None:
    for line in progress.read_lines():
        if on_progress is not None:
            on_progress(line)


def run_job(job: SandboxJob, files: JobFiles, start: Callable[[], StartedJob], *, backend: str,
            on_progress: ProgressCallback | None, image_digest: str = "") -> SandboxOutcome:
    """Walks one prepared job through start -> wait -> read back -> destroy and classifies how it ended."""
    began = time.monotonic()
    limits = job.limits
    started: StartedJob | None = None
    try:
        started = start()
        killed_for = wait_to_end(started, ProgressTail(files.progress_path, limits.progress_bytes), limits,
                                 on_progress)
        end = started.end()
        result_size, progress_size = files.output_sizes()
        result = files.read_result(limits.output_bytes)
    finally:
        if started is not None:
            started.destroy()
    if killed_for is None and end.exit_code == 2 and not result_size and not progress_size and \
            f"can't open file '{SANDBOX_HARNESS_DIR}/" in end.log_tail:
        # The harness, or the launcher that starts it (sandbox.runner.HARNESS_LAUNCHER), is not in the image. Only
        # before anything was written: a harness writes its progress before any student code runs, so a student's
        # file that prints these words and exits 2 is its own crash, not a fault of the service to retry.
        raise InfrastructureError(f"the {backend} sandbox has no harness {job.harness!r} or no launcher for it; "
                                  "rebuild it")
    status = classify(killed_for=killed_for, end=end, result_size=result_size, progress_size=progress_size,
                      limits=limits)
    return SandboxOutcome(status=status, exit_code=None if killed_for else end.exit_code,
                          duration_s=time.monotonic() - began, result=b"" if status == "output_limit" else result,
                          log_tail=end.log_tail, backend=backend, image_digest=image_digest)
