"""Docker backend: one fresh container per job, deny by default, removed in `finally`.

Every container gets: the image pinned by id; no network; a read-only root; a size-capped tmpfs /tmp; memory equal
to memory+swap; a CPU quota; a pids limit; nofile/fsize/core ulimits; uid 65534; all capabilities dropped;
no-new-privileges; Docker's default seccomp profile; no IPC namespace sharing and no /dev/shm; an environment that
names only BLAS thread counts (never the host's); the submission and inputs bind-mounted read-only; /job/out a
0555 directory holding the two pre-created output files. Containers carry the label `cnn-grader.job=1` so a worker
start can remove what a crash left behind (`cleanup_orphans`).
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import time
from pathlib import Path

from sandbox.jobdir import JobDirectory, remove_orphan_job_dirs
from sandbox.runner import (InfrastructureError, ProgressCallback, SandboxJob, SandboxLimits, SandboxOutcome,
                            harness_argv)

JOB_LABEL = "cnn-grader.job"
JOB_ID_LABEL = "cnn-grader.job-id"
HOST_LABEL = "cnn-grader.host"
WORKER_PID_LABEL = "cnn-grader.worker-pid"
LOG_TAIL_BYTES = 4096
# The container's own log is only a diagnostic tail; the json-file driver with one small file keeps a job that
# prints gigabytes from filling the host's disk.
LOG_MAX_SIZE = "256k"
# Polling period of the progress file while the job runs.
PROGRESS_POLL_SECONDS = 0.05
# How long removing a container may take before it is an infrastructure fault.
REMOVE_TIMEOUT_SECONDS = 30
SIGXFSZ_EXIT = 128 + 25
# If the host itself runs short of memory, the kernel kills a job before the grader, the database or the engine.
OOM_SCORE_ADJ = 1000
# A job container from another host (another worker container on this engine) is an orphan once older than this:
# longer than the longest job (training: 45 min wall clock) plus its start and removal.
FOREIGN_ORPHAN_AGE_SECONDS = 2 * 3600


def _docker_errors():
    import docker.errors

    return docker.errors


def connect(timeout_seconds: float = 10.0):
    """A Docker SDK client that has answered a ping, or InfrastructureError."""
    import docker
    import requests

    try:
        client = docker.from_env(timeout=int(max(timeout_seconds, 1)))
        client.ping()
        return client
    except (_docker_errors().DockerException, requests.RequestException, OSError) as error:
        raise InfrastructureError(f"the Docker engine is not reachable: {error}") from error


def container_environment(limits: SandboxLimits) -> dict[str, str]:
    """The job's whole environment: nothing of the host's (no secrets, no database or broker URLs)."""
    threads = str(limits.threads)
    return {"OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1"}


class DockerRunner:
    """Runs jobs in fresh Docker containers created from one image, pinned by its id."""

    name = "docker"

    def __init__(self, image: str, *, job_root: Path, client=None) -> None:
        """Args:
            image: tag or id of the sandbox image; resolved to its immutable id once, here.
            job_root: host directory for per-job files (bind-mounted into containers; must be on the engine's host).
            client: a Docker SDK client (default: from the environment).
        """
        self.client = client or connect()
        errors = _docker_errors()
        try:
            self.image_id = self.client.images.get(image).id
        except errors.ImageNotFound as error:
            raise InfrastructureError(f"the sandbox image {image} is missing; run `grader sandbox ensure-image`") \
                from error
        except errors.DockerException as error:
            raise InfrastructureError(f"the Docker engine is not reachable: {error}") from error
        self.image = image
        self.job_root = Path(job_root).resolve()

    def run(self, job: SandboxJob, on_progress: ProgressCallback | None = None) -> SandboxOutcome:
        started = time.monotonic()
        limits = job.limits
        if not job.harness.isidentifier():
            raise ValueError(f"harness names are plain module names, got {job.harness!r}")
        with JobDirectory(self.job_root, job) as job_dir:
            container = None
            try:
                container = self._create(job, job_dir)
                timed_out = self._run_to_end(container, job_dir, limits, on_progress)
                state = self._inspect_state(container)
                log_tail = self._log_tail(container)
                for line in job_dir.read_new_progress_lines(limits.progress_bytes):
                    if on_progress:
                        on_progress(line)
                result_size, progress_size = job_dir.output_sizes()
                result = job_dir.read_result(limits.output_bytes)
            finally:
                if container is not None:
                    self._remove(container)
        exit_code = None if timed_out else state.get("ExitCode")
        if exit_code == 2 and f"can't open file '/opt/harness/{job.harness}.py'" in log_tail:
            raise InfrastructureError(f"the sandbox image {self.image_id} has no harness {job.harness!r}; rebuild it")
        status = classify(timed_out=timed_out, oom_killed=bool(state.get("OOMKilled")), exit_code=exit_code,
                          result_size=result_size, progress_size=progress_size, limits=limits)
        return SandboxOutcome(status=status, exit_code=exit_code, duration_s=time.monotonic() - started,
                              result=result if status != "output_limit" else b"", log_tail=log_tail,
                              backend=self.name, image_digest=self.image_id)

    def _create(self, job: SandboxJob, job_dir: JobDirectory):
        from docker.types import LogConfig, Mount, Ulimit

        limits = job.limits
        mounts = [
            Mount("/job/submission", str(job_dir.submission_dir), type="bind", read_only=True),
            Mount("/job/inputs", str(job_dir.inputs_dir), type="bind", read_only=True),
            Mount("/job/out", str(job_dir.out_dir), type="bind", read_only=False),
        ]
        for name, host_dir in sorted(job.data_dirs.items()):
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"data directory names must be plain names, got {name!r}")
            mounts.append(Mount(f"/job/data/{name}", str(Path(host_dir).resolve()), type="bind", read_only=True))
        argv = harness_argv(f"/opt/harness/{job.harness}.py", kit="/opt/kit", submission="/job/submission/spatial.py",
                            inputs="/job/inputs", data="/job/data", out="/job/out", args=job.args)
        memory = int(limits.memory_bytes)
        try:
            return self.client.containers.create(
                self.image_id, command=argv, user="65534:65534", working_dir="/tmp", hostname="sandbox",
                network_mode="none", network_disabled=True, ipc_mode="none", read_only=True,
                tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={int(limits.tmpfs_bytes)},uid=65534,gid=65534,mode=0700"},
                mem_limit=memory, memswap_limit=memory, mem_swappiness=0, nano_cpus=int(limits.cpus * 1e9),
                pids_limit=int(limits.pids), cap_drop=["ALL"], security_opt=["no-new-privileges"], init=True,
                oom_score_adj=OOM_SCORE_ADJ,
                ulimits=[Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                         Ulimit(name="fsize", soft=limits.fsize_bytes, hard=limits.fsize_bytes),
                         Ulimit(name="core", soft=0, hard=0)],
                environment=container_environment(limits), mounts=mounts,
                log_config=LogConfig(type="json-file", config={"max-size": LOG_MAX_SIZE, "max-file": "1"}),
                labels={JOB_LABEL: "1", JOB_ID_LABEL: job_dir.job_id, HOST_LABEL: socket.gethostname(),
                        WORKER_PID_LABEL: str(os.getpid())},
                stdin_open=False, tty=False, auto_remove=False,
            )
        except _docker_errors().ImageNotFound as error:
            raise InfrastructureError(f"the sandbox image {self.image} ({self.image_id}) is gone") from error
        except _docker_errors().DockerException as error:
            raise InfrastructureError(f"creating the job container failed: {error}") from error

    def _run_to_end(self, container, job_dir: JobDirectory, limits: SandboxLimits,
                    on_progress: ProgressCallback | None) -> bool:
        """Starts the container and waits for it, streaming progress; kills it at the wall-clock limit.

        Returns whether the job was killed for its time.
        """
        finished = threading.Event()
        wait_errors: list[BaseException] = []

        def wait_for_exit() -> None:
            try:
                container.wait()
            except BaseException as error:  # noqa: BLE001 - reported through wait_errors
                wait_errors.append(error)
            finally:
                finished.set()

        try:
            container.start()
        except _docker_errors().DockerException as error:
            raise InfrastructureError(f"starting the job container failed: {error}") from error
        deadline = time.monotonic() + limits.wall_seconds
        waiter = threading.Thread(target=wait_for_exit, daemon=True)
        waiter.start()
        timed_out = False
        while not finished.wait(PROGRESS_POLL_SECONDS):
            for line in job_dir.read_new_progress_lines(limits.progress_bytes):
                if on_progress:
                    on_progress(line)
            if time.monotonic() >= deadline:
                timed_out = True
                try:
                    container.kill()
                except _docker_errors().APIError:
                    pass  # it ended on its own between the check and the kill
                finished.wait(REMOVE_TIMEOUT_SECONDS)
                break
        if wait_errors and not timed_out:
            raise InfrastructureError(f"waiting for the job container failed: {wait_errors[0]}")
        return timed_out

    def _inspect_state(self, container) -> dict:
        try:
            container.reload()
        except _docker_errors().DockerException as error:
            raise InfrastructureError(f"inspecting the job container failed: {error}") from error
        return container.attrs.get("State", {})

    @staticmethod
    def _log_tail(container) -> str:
        try:
            raw = container.logs(stdout=True, stderr=True, tail=200)
        except _docker_errors().DockerException:
            return ""
        return raw[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace")

    @staticmethod
    def _remove(container) -> None:
        try:
            container.remove(force=True)
        except _docker_errors().NotFound:
            pass
        except _docker_errors().APIError as error:
            if error.status_code == 409 and "already in progress" in str(error):
                return  # another remover (a cleanup) got there first
            raise InfrastructureError(f"removing the job container failed: {error}") from error
        except _docker_errors().DockerException as error:
            raise InfrastructureError(f"removing the job container failed: {error}") from error

    def cleanup_orphans(self, *, everything: bool = False) -> int:
        """Removes job containers and job directories left by workers that are gone; returns the container count.

        A container of this host is an orphan when its worker pid is dead. One started from another host (another
        worker container on the same engine) cannot be checked that way: it is an orphan only when older than
        `FOREIGN_ORPHAN_AGE_SECONDS`, longer than any job may run. `everything` removes all job containers (for
        `grader sandbox cleanup --all` with no worker running).
        """
        return cleanup_orphans(self.client, self.job_root, everything=everything)


def cleanup_orphans(client, job_root: Path | None = None, *, everything: bool = False,
                    only_label: str | None = None) -> int:
    """See `DockerRunner.cleanup_orphans`. `only_label` ("key=value") narrows it to matching containers (tests)."""
    removed = 0
    labels_filter = [f"{JOB_LABEL}=1"] + ([only_label] if only_label else [])
    for container in client.containers.list(all=True, filters={"label": labels_filter}):
        if not everything and not _is_orphan(container):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except (_docker_errors().NotFound, _docker_errors().APIError):
            pass  # gone already, or its removal is in progress elsewhere
    if job_root is not None:
        remove_orphan_job_dirs(job_root)
    return removed


def _is_orphan(container) -> bool:
    from sandbox.jobdir import _pid_alive

    labels = container.labels or {}
    pid_text = labels.get(WORKER_PID_LABEL, "")
    if labels.get(HOST_LABEL) == socket.gethostname() and pid_text.isdigit():
        return not _pid_alive(int(pid_text))
    created = container.attrs.get("Created", "")
    try:
        started = datetime.datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return False
    age = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    return age > FOREIGN_ORPHAN_AGE_SECONDS


def classify(*, timed_out: bool, oom_killed: bool, exit_code: int | None, result_size: int, progress_size: int,
             limits: SandboxLimits) -> str:
    """Maps how a job ended to an outcome status (see SandboxOutcome)."""
    if timed_out:
        return "timeout"
    if oom_killed:
        return "memory"
    if result_size > limits.output_bytes or progress_size > limits.progress_bytes or exit_code == SIGXFSZ_EXIT:
        return "output_limit"
    if exit_code == 0:
        return "ok"
    if exit_code is not None and exit_code > 128:
        return "crashed"
    return "exited"
