"""A process of its own as uid 65534, for hosts that allow neither Docker nor user namespaces (bwrap).

Made for Gradescope's autograder container, where the grader runs as root in a throw-away container per
submission and the kernel usually refuses the namespaces bubblewrap needs. The job runs the harness with the
system Python (`-I`, an empty environment) as uid/gid 65534 with no supplementary groups, in its own session,
under rlimits (address space, CPU seconds, processes, open files, file size, no core dumps) and the wall clock.
It sees the job's files as the other backends lay them out (JobDirectory), reads the kit and harnesses from
directories the caller prepared world-readable, and cannot write anything but its two output files and its own
private temporary directory. Whatever it started is killed afterwards, including processes that left its
session: every process of uid 65534 the machine's pid namespace shows is killed (kill(-1) as that uid), which is
why this backend refuses to start where other processes of uid 65534 are visible (a container is its own pid
namespace; a shared host is not).

What it cannot enforce (the caller says so in its output): no network isolation, no private view of the file
system (the job can read whatever is world-readable; the grader keeps its own files, the reference and the spec
in a 0700 directory), memory is bounded as address space (RLIMIT_AS), not resident memory, there is no CPU
quota beyond RLIMIT_CPU, and RLIMIT_NPROC counts the uid's processes across the whole host (other containers'
uid-65534 processes included), so `limits.pids` must leave room for them.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

from sandbox.core import (JobEnd, ProcessGroupJob, check_job, infrastructure_faults, job_environment, run_job)
from sandbox.jobdir import JOB_GID, JOB_UID, JobDirectory
from sandbox.runner import (InfrastructureError, ProgressCallback, SandboxJob, SandboxLimits, SandboxOutcome,
                            harness_argv)

CPU_GRACE_SECONDS = 5  # RLIMIT_CPU sits above the wall limit: the wall clock decides, this is a backstop


def nobody_usable() -> str | None:
    """None when jobs can run here as uid 65534, else why not."""
    if os.geteuid() != 0:
        return "only root can start a job as uid 65534"
    others = _processes_of(JOB_UID)
    if others:
        # Killing every process of the uid after a job would also kill these (another sandbox's jobs).
        return f"other processes of uid {JOB_UID} run on this machine ({len(others)}); this backend needs it alone"
    return None


def _processes_of(uid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


class NobodyRunner:
    """Runs jobs as uid 65534 in a plain child process. See the module doc for what it cannot enforce."""

    name = "nobody-process"

    def __init__(self, *, job_root: Path, kit_dir: Path, harness_dir: Path, python: str = "/usr/bin/python3",
                 check: bool = True) -> None:
        self.job_root = Path(job_root).resolve()
        self.kit_dir = Path(kit_dir).resolve()
        self.harness_dir = Path(harness_dir).resolve()
        self.python = python
        if check:
            reason = nobody_usable()
            if reason:
                raise InfrastructureError(reason)

    def run(self, job: SandboxJob, on_progress: ProgressCallback | None = None) -> SandboxOutcome:
        check_job(job)
        harness_file = self.harness_dir / f"{job.harness}.py"
        if not harness_file.is_file():
            raise InfrastructureError(f"no harness named {job.harness!r} in {self.harness_dir}")
        if job.data_dirs:
            raise InfrastructureError("the nobody-process backend runs correctness jobs only (no data directories)")
        with infrastructure_faults("preparing or running the job failed"), \
                JobDirectory(self.job_root, job) as job_dir:
            for path in (self.job_root, job_dir.path):
                path.chmod(0o711)  # uid 65534 passes through to its own files, lists nothing
            private_tmp = job_dir.path / "tmp"
            private_tmp.mkdir(mode=0o700)
            os.chown(private_tmp, JOB_UID, JOB_GID)
            argv = harness_argv(str(harness_file), python=self.python, kit=str(self.kit_dir),
                                submission=str(job_dir.submission_dir / "spatial.py"), inputs=str(job_dir.inputs_dir),
                                data=str(job_dir.path / "no-data"), out=str(job_dir.out_dir), args=job.args)
            environment = job_environment(job.limits, home=str(private_tmp))
            return run_job(job, job_dir, lambda: NobodyJob(argv, job.limits, env=environment, cwd=private_tmp),
                           backend=self.name, on_progress=on_progress)


class NobodyJob(ProcessGroupJob):
    """The job's process group as uid 65534; ending or destroying it also kills whatever left the group."""

    def __init__(self, argv: list[str], limits: SandboxLimits, *, env: dict[str, str], cwd: Path) -> None:
        super().__init__(argv, limits, env=env, cwd=cwd, preexec_fn=_drop_to_nobody(limits))

    def end(self) -> JobEnd:
        kill_every_job_process()
        return super().end()

    def destroy(self) -> None:
        super().destroy()
        kill_every_job_process()


def kill_every_job_process() -> None:
    """Kills every process of uid 65534, also those that left the job's session (kill(-1) as that uid)."""
    subprocess.run([sys.executable, "-I", "-S", "-c", "import os, signal; os.kill(-1, signal.SIGKILL)"],
                   user=JOB_UID, group=JOB_GID, extra_groups=[], env={}, check=False, capture_output=True)


def _drop_to_nobody(limits: SandboxLimits):
    cpu_seconds = int(limits.wall_seconds) + CPU_GRACE_SECONDS

    def apply() -> None:
        os.setgroups([])
        os.setresgid(JOB_GID, JOB_GID, JOB_GID)
        os.setresuid(JOB_UID, JOB_UID, JOB_UID)
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))  # per uid: this job is its only user
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize_bytes, limits.fsize_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)

    return apply
