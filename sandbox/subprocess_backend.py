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

Everything else (wait loop, progress, classification, the job directory) is shared with the real backends
(sandbox/core.py, sandbox/jobdir.py); what is this backend's own: the layout beside the job directory, the rlimits,
and that a SIGKILL nobody sent is the kernel's OOM killer (there is no cgroup to ask).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

import numpy

from sandbox.core import (SIGKILL_EXIT, JobEnd, ProcessGroupJob, check_job, infrastructure_faults, job_environment,
                          run_job)
from sandbox.jobdir import JobDirectory
from sandbox.runner import (HARNESS_DIR, KIT_DIR, InfrastructureError, ProgressCallback, SandboxJob, SandboxLimits,
                            SandboxOutcome, harness_argv)

CPU_GRACE_SECONDS = 5  # the CPU rlimit sits above the wall limit: the wall clock decides, this is a backstop


class SubprocessRunner:
    """UNSAFE: a child process with rlimits, no isolation. Use only in the engine's own tests (see module doc)."""

    name = "unsafe-subprocess"

    def __init__(self, python: str = sys.executable, *, harness_dir: Path = HARNESS_DIR, kit_dir: Path = KIT_DIR,
                 job_root: Path | None = None):
        self.python = python
        self.harness_dir = Path(harness_dir)
        self.kit_dir = Path(kit_dir)
        self.job_root = Path(job_root) if job_root else Path(tempfile.gettempdir()) / "grader-unsafe-jobs"

    def run(self, job: SandboxJob, on_progress: ProgressCallback | None = None) -> SandboxOutcome:
        check_job(job)
        harness_file = self.harness_dir / f"{job.harness}.py"
        if not harness_file.is_file():
            raise InfrastructureError(f"no harness named {job.harness!r} in {self.harness_dir}")
        with infrastructure_faults("preparing or running the unsafe subprocess job failed"), \
                JobDirectory(self.job_root, job) as job_dir:
            layout = self._prepare(job_dir.path, job)
            argv = harness_argv(str(layout["harness"] / harness_file.name), python=self.python,
                                kit=str(layout["kit"]), submission=str(job_dir.submission_dir / "spatial.py"),
                                inputs=str(job_dir.inputs_dir), data=str(layout["data"]), out=str(job_dir.out_dir),
                                args=job.args)
            argv.insert(2, "-S")  # no site-packages: the grader (installed editable) must not be importable
            return run_job(job, job_dir, lambda: ChildJob(argv, layout["tmp"], job.limits), backend=self.name,
                           on_progress=on_progress)

    def _prepare(self, root: Path, job: SandboxJob) -> dict[str, Path]:
        """The kit, harnesses, data links and a scratch folder beside the job directory's own files."""
        layout = {name: root / name for name in ("kit", "harness", "data", "tmp")}
        for path in layout.values():
            path.mkdir()
        # Copies, not links: a job that rewrites the kit or a harness changes only its own copy.
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
        for name, source in job.data_dirs.items():
            os.symlink(Path(source).resolve(), layout["data"] / name)
        return layout


class ChildJob(ProcessGroupJob):
    """A started child process group; there is no cgroup to ask why it died."""

    def __init__(self, argv: list[str], tmp_dir: Path, limits: SandboxLimits) -> None:
        super().__init__(argv, limits, env=job_environment(limits, home=str(tmp_dir)), preexec_fn=_rlimits(limits),
                         cwd=tmp_dir)

    def end(self) -> JobEnd:
        self.kill()  # background processes of the job end with it
        # Nobody else sends SIGKILL to a job that ended by itself: the kernel's OOM killer did.
        return JobEnd(exit_code=self.exit_code(), oom_killed=self.exit_code() == SIGKILL_EXIT,
                      log_tail=self.log.text())


def _rlimits(limits: SandboxLimits):
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

    return set_limits
