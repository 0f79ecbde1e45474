"""Bubblewrap backend for hosts without Docker: same interface and layout, the same limits where the kernel allows.

Each job runs `bwrap` over the offline root filesystem (var/sandbox/rootfs, the one the Docker image is imported
from: Debian minbase + python3 + NumPy) with every namespace unshared (user, pid, net, ipc, uts, cgroup), a new
session, --die-with-parent, all capabilities dropped, no further user namespaces, an empty environment, the root
read-only, a size-capped tmpfs /tmp, the kit and harnesses bind-mounted read-only from the project, and the job's
files as in the Docker backend. When the worker is root, bwrap itself is started as uid 65534 (setpriv), so the
job has no uid that owns anything on the host.

Limits:
- nofile, fsize, core: rlimits, exactly as in Docker.
- memory, CPU quota, pids: cgroup v1 (memory.limit_in_bytes = memory.memsw.limit_in_bytes, cpu.cfs_quota_us,
  pids.max) when the worker is root and the hierarchies are writable. Otherwise memory falls back to RLIMIT_AS
  (address space, not resident memory: an over-limit allocation raises MemoryError instead of an OOM kill, and
  large virtual reservations can fail early), pids to RLIMIT_NPROC (counted per real uid across the whole host,
  not per job), and there is NO CPU quota (only the wall-clock timeout bounds CPU use).

What it cannot enforce (documented in the README): no seccomp filter (Docker's default profile is not applied);
without root no cgroups (see above); the job shares the host kernel's view of /proc/cpuinfo and similar
read-only kernel files; the output-file size is bounded by RLIMIT_FSIZE only.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

from sandbox.core import (OOM_SCORE_ADJ, SANDBOX_HARNESS_DIR, SANDBOX_INPUTS, SANDBOX_KIT, SANDBOX_OUT,
                          SANDBOX_SUBMISSION, JobEnd, ProcessGroupJob, check_job, infrastructure_faults,
                          job_environment, run_job, sandbox_argv)
from sandbox.jobdir import JOB_GID, JOB_UID, JobDirectory
from sandbox.runner import (HARNESS_DIR, KIT_DIR, InfrastructureError, ProgressCallback, SandboxJob, SandboxLimits,
                            SandboxOutcome)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "cnn-grader"
CPU_PERIOD_MICROSECONDS = 100000  # cfs period; the quota is limits.cpus times this
# bwrap itself stays inside the sandbox as its pid 1, and the job can read /proc/1/environ: bwrap must be started
# with nothing of the worker's environment, not only told to --clearenv its child.
BWRAP_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


class _Cgroups:
    """Per-job cgroup v1 directories (memory, cpu, pids), or nothing when they cannot be made."""

    def __init__(self, job_id: str, limits: SandboxLimits) -> None:
        self.paths: dict[str, Path] = {}
        if os.geteuid() != 0:
            return
        try:
            for controller in ("memory", "pids", "cpu"):
                hierarchy = CGROUP_ROOT / controller
                if not (hierarchy / "tasks").exists():
                    continue
                path = hierarchy / CGROUP_PARENT / job_id
                path.mkdir(parents=True, exist_ok=True)
                self.paths[controller] = path
            memory = self.paths.get("memory")
            if memory:
                (memory / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
                if (memory / "memory.memsw.limit_in_bytes").exists():
                    (memory / "memory.memsw.limit_in_bytes").write_text(str(limits.memory_bytes))
                (memory / "memory.swappiness").write_text("0")
            if "pids" in self.paths:
                (self.paths["pids"] / "pids.max").write_text(str(limits.pids))
            if "cpu" in self.paths:
                (self.paths["cpu"] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_MICROSECONDS))
                (self.paths["cpu"] / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * CPU_PERIOD_MICROSECONDS)))
                (self.paths["cpu"] / "cpu.shares").write_text(str(int(limits.cpu_shares)))
        except OSError:
            self.remove()
            self.paths = {}

    @property
    def memory(self) -> bool:
        return "memory" in self.paths

    @property
    def pids(self) -> bool:
        return "pids" in self.paths

    def join(self) -> None:
        """Moves the calling process into every cgroup (called in the child before exec)."""
        for path in self.paths.values():
            (path / "tasks").write_text(str(os.getpid()))

    def oom_killed(self) -> bool:
        memory = self.paths.get("memory")
        if not memory:
            return False
        try:
            control = (memory / "memory.oom_control").read_text()
        except OSError:
            return False
        return any(line.split()[0] == "oom_kill" and int(line.split()[1]) > 0 for line in control.splitlines())

    def kill_all(self) -> None:
        for path in self.paths.values():
            try:
                for pid in (path / "tasks").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            except OSError:
                pass

    def remove(self) -> None:
        for path in self.paths.values():
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.02)


def bwrap_usable(rootfs: Path) -> str | None:
    """None when bwrap can run jobs here, else the reason it cannot."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed (apt-get install -y bubblewrap)"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        return (f"no sandbox root filesystem at {rootfs} "
                "(build it with `grader sandbox build-image --offline --rootfs-only`)")
    probe = _bwrap_prefix() + ["--unshare-all", "--ro-bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
                               "--clearenv", "/usr/bin/python3", "-I", "-c", "import numpy"]
    try:
        completed = subprocess.run(probe, capture_output=True, timeout=30, check=False, env=BWRAP_ENVIRONMENT)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap failed to start: {error}"
    if completed.returncode != 0:
        return f"bwrap cannot create a sandbox here: {completed.stderr.decode(errors='replace')[-300:]}"
    return None


def _bwrap_prefix() -> list[str]:
    """Drops root before bwrap: the job then owns nothing on the host and user namespaces do the rest."""
    if os.geteuid() == 0:
        return ["setpriv", f"--reuid={JOB_UID}", f"--regid={JOB_GID}", "--clear-groups", "bwrap"]
    return ["bwrap"]


class BwrapRunner:
    """Runs jobs with bubblewrap over the offline root filesystem. See the module doc for what it cannot enforce."""

    name = "bwrap"

    def __init__(self, *, rootfs: Path, job_root: Path, kit_dir: Path = KIT_DIR, harness_dir: Path = HARNESS_DIR,
                 hidden: tuple[Path, ...] = (), check: bool = True) -> None:
        """`hidden`: directories of `rootfs` the job sees empty (a tmpfs over each), for a root file system that is
        not the sandbox's own, e.g. `/` in Gradescope's container with the grader under /autograder. The mount
        points the job's files are bound to (/opt/kit, /opt/harness, /job/...) must exist in `rootfs`."""
        self.rootfs = Path(rootfs).resolve()
        self.hidden = tuple(Path(path) for path in hidden)
        self.job_root = Path(job_root).resolve()
        self.kit_dir = Path(kit_dir).resolve()
        self.harness_dir = Path(harness_dir).resolve()
        if check:
            reason = bwrap_usable(self.rootfs)
            if reason:
                raise InfrastructureError(reason)

    def _argv(self, job: SandboxJob, job_dir: JobDirectory) -> list[str]:
        limits = job.limits
        argv = _bwrap_prefix() + [
            "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--unshare-user", "--disable-userns", "--uid", str(JOB_UID), "--gid", str(JOB_GID),
            "--hostname", "sandbox",
            "--ro-bind", str(self.rootfs), "/",
            *[argument for path in self.hidden for argument in ("--tmpfs", str(path))],
            "--proc", "/proc", "--dev", "/dev",
            "--perms", "0700", "--size", str(int(limits.tmpfs_bytes)), "--tmpfs", "/tmp",
            "--ro-bind", str(self.harness_dir), SANDBOX_HARNESS_DIR,
            "--ro-bind", str(job_dir.submission_dir), SANDBOX_SUBMISSION.rsplit("/", 1)[0],
            "--ro-bind", str(job_dir.inputs_dir), SANDBOX_INPUTS,
            "--bind", str(job_dir.out_dir), SANDBOX_OUT,
        ]
        if (self.kit_dir / "tinytorch").is_dir():
            argv += ["--ro-bind", str(self.kit_dir), SANDBOX_KIT]
        if job.data_dirs:
            argv += ["--tmpfs", "/job/data"]
            for name, host_dir in sorted(job.data_dirs.items()):
                argv += ["--ro-bind", str(Path(host_dir).resolve()), f"/job/data/{name}"]
            argv += ["--remount-ro", "/job/data"]
        argv += ["--clearenv"]
        for key, value in job_environment(limits).items():
            argv += ["--setenv", key, value]
        return argv + ["--chdir", "/tmp", "--"] + sandbox_argv(job, python="/usr/bin/python3")

    def run(self, job: SandboxJob, on_progress: ProgressCallback | None = None) -> SandboxOutcome:
        check_job(job)
        if not (self.harness_dir / f"{job.harness}.py").is_file():
            raise InfrastructureError(f"no harness named {job.harness!r} in {self.harness_dir}")
        with infrastructure_faults("preparing or running the bwrap job failed"), \
                JobDirectory(self.job_root, job) as job_dir:
            # The unprivileged bwrap must be able to reach the job's files to bind them.
            for path in (self.job_root, job_dir.path):
                path.chmod(0o711)
            return run_job(job, job_dir, lambda: BwrapJob(self._argv(job, job_dir), job_dir.job_id, job.limits),
                           backend=self.name, on_progress=on_progress)


class BwrapJob(ProcessGroupJob):
    """A started bwrap sandbox: a process group (bwrap leads it) and the job's cgroups."""

    def __init__(self, argv: list[str], job_id: str, limits: SandboxLimits) -> None:
        self.cgroups = _Cgroups(job_id, limits)
        try:
            super().__init__(argv, limits, env=BWRAP_ENVIRONMENT, preexec_fn=_child_setup(limits, self.cgroups))
        except BaseException:
            self.cgroups.remove()
            raise

    def end(self) -> JobEnd:
        self.cgroups.kill_all()
        # bwrap reports the job's death by signal N as exit 128+N, like Docker; a signal to bwrap itself likewise.
        return JobEnd(exit_code=self.exit_code(), oom_killed=self.cgroups.oom_killed(), log_tail=self.log.text())

    def destroy(self) -> None:
        super().destroy()
        self.cgroups.remove()


def _child_setup(limits: SandboxLimits, cgroups: _Cgroups):
    def setup() -> None:
        cgroups.join()
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.nofile, limits.nofile))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.fsize_bytes, limits.fsize_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if not cgroups.memory:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if not cgroups.pids:
            resource.setrlimit(resource.RLIMIT_NPROC, (limits.pids, limits.pids))
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        with open("/proc/self/oom_score_adj", "w") as adjust:  # host memory pressure kills the job first
            adjust.write(str(OOM_SCORE_ADJ))

    return setup
