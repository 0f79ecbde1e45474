"""UNSAFE backend: runs the harness as a plain child process with resource limits. For the engine's own tests only.

This backend isolates nothing that matters against a hostile submission: the child runs as the same user as
the grader, sees the host's file system and network, and can read anything the grader can. It exists so the
grading engine (harness, checks, scoring) can be tested without Docker; it is never picked unless asked for by
name ("unsafe-subprocess"). What it does give:

- the same layout as the real sandbox, in a fresh temporary directory removed afterwards
  (kit, harness, submission, inputs, data, out/result.bin, out/progress.jsonl, tmp);
- `python -I -S`, so neither the environment nor site-packages leak in: the child can import only the
  stdlib, the kit and NumPy (linked beside the kit); the grader and the reference are not on its path;
- an empty environment (no host secrets), apart from thread-count variables;
- rlimits: address space (memory), CPU seconds, open files, file size, no core dumps;
- its own process group, killed as a whole at the wall-clock limit and in any case afterwards;
- caps on result.bin, progress.jsonl and the log tail.
"""

from __future__ import annotations

import collections
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy

from sandbox.runner import (HARNESS_DIR, KIT_DIR, InfrastructureError, ProgressCallback, SandboxJob, SandboxOutcome,
                            harness_argv)

LOG_TAIL_BYTES = 8 * 1024  # how much of stdout+stderr is kept for diagnostics
POLL_SECONDS = 0.02  # how often the progress file and the wall clock are looked at
CPU_GRACE_SECONDS = 5  # the CPU rlimit sits above the wall limit: the wall clock decides, this is a backstop
MEMORY_ERROR_EXIT_CODE = 3  # the harness exits with this when Python raised MemoryError outside a case


class SubprocessRunner:
    """UNSAFE: a child process with rlimits, no isolation. Use only in the engine's own tests (see module doc)."""

    name = "unsafe-subprocess"

    def __init__(self, python: str = sys.executable, *, harness_dir: Path = HARNESS_DIR, kit_dir: Path = KIT_DIR):
        self.python = python
        self.harness_dir = Path(harness_dir)
        self.kit_dir = Path(kit_dir)

    def run(self, job: SandboxJob, on_progress: ProgressCallback | None = None) -> SandboxOutcome:
        harness_file = self.harness_dir / f"{job.harness}.py"
        if not harness_file.is_file():
            raise InfrastructureError(f"no harness named {job.harness!r} in {self.harness_dir}")
        started = time.monotonic()
        root = Path(tempfile.mkdtemp(prefix="grader-job-"))
        try:
            layout = self._prepare(root, job)
            argv = harness_argv(str(layout["harness"] / harness_file.name), python=self.python,
                                kit=str(layout["kit"]), submission=str(layout["submission"] / "spatial.py"),
                                inputs=str(layout["inputs"]), data=str(layout["data"]), out=str(layout["out"]),
                                args=job.args)
            argv.insert(2, "-S")  # no site-packages: the grader (installed editable) must not be importable
            return self._run_child(argv, root, layout, job, on_progress, started)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def _prepare(self, root: Path, job: SandboxJob) -> dict[str, Path]:
        layout = {name: root / name for name in ("kit", "harness", "submission", "inputs", "data", "out", "tmp")}
        for path in layout.values():
            path.mkdir()
        if (self.kit_dir / "tinytorch").is_dir():
            shutil.copytree(self.kit_dir / "tinytorch", layout["kit"] / "tinytorch",
                            ignore=shutil.ignore_patterns("__pycache__"))
        # NumPy sits beside the kit, as in the image where it is the only third-party package.
        numpy_dir = Path(numpy.__file__).resolve().parent
        os.symlink(numpy_dir, layout["kit"] / "numpy")
        libs = numpy_dir.parent / "numpy.libs"
        if libs.is_dir():
            os.symlink(libs, layout["kit"] / "numpy.libs")
        shutil.copytree(self.harness_dir, layout["harness"], dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        (layout["submission"] / "spatial.py").write_bytes(job.submission)
        for name, content in job.inputs.items():
            if "/" in name or name.startswith("."):
                raise InfrastructureError(f"bad input file name {name!r}")
            (layout["inputs"] / name).write_bytes(content)
        for name, source in job.data_dirs.items():
            os.symlink(Path(source).resolve(), layout["data"] / name)
        (layout["out"] / "result.bin").write_bytes(b"")
        (layout["out"] / "progress.jsonl").write_bytes(b"")
        return layout

    def _run_child(self, argv: list[str], root: Path, layout: dict[str, Path], job: SandboxJob,
                   on_progress: ProgressCallback | None, started: float) -> SandboxOutcome:
        limits = job.limits
        threads = str(max(1, int(limits.threads)))
        env = {"OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "LC_ALL": "C.UTF-8", "HOME": str(layout["tmp"]), "TMPDIR": str(layout["tmp"])}
        cpu_seconds = int(limits.wall_seconds) + CPU_GRACE_SECONDS

        def set_limits() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_DATA, (limits.memory_bytes, limits.memory_bytes))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize_bytes, limits.fsize_bytes))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            # RLIMIT_NPROC is not set: it counts every process of the user (and is ignored for root), so it
            # cannot bound one job; the pids limit is enforced by the docker backend's cgroup.

        log_tail: collections.deque[bytes] = collections.deque()
        log_lock = threading.Lock()
        try:
            process = subprocess.Popen(argv, cwd=layout["tmp"], env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=set_limits,
                                       start_new_session=True, close_fds=True)
        except OSError as error:
            raise InfrastructureError(f"could not start {argv[0]}: {error}") from error
        drainer = threading.Thread(target=_drain, args=(process.stdout, log_tail, log_lock), daemon=True)
        drainer.start()

        progress_path = layout["out"] / "progress.jsonl"
        progress = _ProgressReader(progress_path, limits.progress_bytes, on_progress)
        killed_for: str | None = None
        deadline = started + limits.wall_seconds
        try:
            while process.poll() is None:
                if progress.poll():
                    killed_for = "output_limit"
                    break
                if time.monotonic() > deadline:
                    killed_for = "timeout"
                    break
                time.sleep(POLL_SECONDS)
        finally:
            _kill_group(process)
            process.wait()
            drainer.join(timeout=2)
        if killed_for is None and progress.poll():
            killed_for = "output_limit"
        progress.finish()

        result_path = layout["out"] / "result.bin"
        result = b""
        if result_path.is_file():
            with open(result_path, "rb") as handle:
                result = handle.read(limits.output_bytes + 1)
        if killed_for is None and len(result) > limits.output_bytes:
            killed_for = "output_limit"
        result = result[:limits.output_bytes]

        with log_lock:
            tail = b"".join(log_tail)[-LOG_TAIL_BYTES:].decode("utf-8", "replace")
        code = process.returncode
        if killed_for is not None:
            status, exit_code = killed_for, None
        elif code == 0:
            status, exit_code = "ok", 0
        elif code == MEMORY_ERROR_EXIT_CODE or (code > 0 and "MemoryError" in tail[-300:]):
            # Under RLIMIT_AS an allocation fails with MemoryError instead of an OOM kill.
            status, exit_code = "memory", code
        elif code > 0:
            status, exit_code = "exited", code
        elif -code in (signal.SIGXCPU,):
            status, exit_code = "timeout", None
        elif -code == signal.SIGXFSZ:
            status, exit_code = "output_limit", None
        elif -code == signal.SIGKILL:
            status, exit_code = "memory", None  # nobody else kills it: the kernel's OOM killer did
        else:
            status, exit_code = "crashed", None
        return SandboxOutcome(status=status, exit_code=exit_code, duration_s=time.monotonic() - started,
                              result=result, log_tail=tail, backend=self.name)


def _drain(stream, tail: collections.deque[bytes], lock: threading.Lock) -> None:
    """Read the child's output to the end, keeping only the last LOG_TAIL_BYTES."""
    kept = 0
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        with lock:
            tail.append(chunk)
            kept += len(chunk)
            while tail and kept - len(tail[0]) >= LOG_TAIL_BYTES:
                kept -= len(tail.popleft())
    stream.close()


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the child's whole process group (it is the group leader), whatever it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _ProgressReader:
    """Follows progress.jsonl while the job runs and hands complete lines to the callback, up to a byte cap."""

    def __init__(self, path: Path, cap: int, callback: ProgressCallback | None):
        self.path, self.cap, self.callback = path, cap, callback
        self.offset = 0
        self.pending = b""

    def poll(self) -> bool:
        """Read what is new; True when the file went over its cap."""
        try:
            size = self.path.stat().st_size
        except OSError:
            return False
        if size > self.cap:
            return True
        if size <= self.offset:
            return False
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(size - self.offset)
        self.offset += len(data)
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            if line.strip() and self.callback is not None:
                self.callback(line.decode("utf-8", "replace"))
        return False

    def finish(self) -> None:
        if self.offset < self.cap:
            self.poll()
