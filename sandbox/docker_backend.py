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
import signal
import socket
import threading
from pathlib import Path

import docker
import docker.errors
import requests
import urllib3.exceptions
from docker.transport.unixconn import UnixHTTPAdapter
from docker.types import LogConfig, Mount, Ulimit

from sandbox.core import (OOM_SCORE_ADJ, SANDBOX_INPUTS, SANDBOX_OUT, SANDBOX_SUBMISSION, SIGNAL_EXIT_BASE, JobEnd,
                          check_job, infrastructure_faults, job_environment, run_job, sandbox_argv)
from sandbox.jobdir import JobDirectory, SharedInputs, pid_alive, remove_orphan_job_dirs
from sandbox.runner import InfrastructureError, ProgressCallback, SandboxJob, SandboxLimits, SandboxOutcome

JOB_LABEL = "cnn-grader.job"
JOB_ID_LABEL = "cnn-grader.job-id"
HOST_LABEL = "cnn-grader.host"
WORKER_PID_LABEL = "cnn-grader.worker-pid"
# Every way the SDK reports that the engine failed, was unreachable or did not answer in time.
ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, urllib3.exceptions.HTTPError)
# How many of the container log's last lines are fetched for the log tail (then cut to limits.log_tail_bytes).
LOG_TAIL_LINES = 200
# Where a job whose CPU weight counts host-wide gets its cgroup, by the engine's cgroup driver: cgroupfs puts every
# container inside one group of its own (/docker), at the top of the hierarchy beside it instead. Under systemd
# containers already sit in system.slice beside the engine's and the other services' own units: left there.
HOST_WIDE_CGROUP_PARENTS = {"cgroupfs": "/"}


def connect(timeout_seconds: float = 10.0):
    """A Docker SDK client that has answered a ping, or InfrastructureError."""
    with infrastructure_faults("the Docker engine is not reachable", *ENGINE_ERRORS):
        client = docker.from_env(timeout=int(max(timeout_seconds, 1)))
        keep_connections_alive(client.api)
        client.ping()
        return client


class KeepAliveUnixAdapter(UnixHTTPAdapter):
    """The SDK's Unix-socket adapter with one connection pool for the socket. The SDK's own keys its pools by the
    whole request URL (docker 7.1), so every call naming a new container opened a new connection and dropped an
    older one: a job's five calls opened four (issue 14: each costs the worker and the engine CPU)."""

    POOL_KEY = "http+docker://localhost"

    def get_connection(self, url, proxies=None):
        return super().get_connection(self.POOL_KEY, proxies)


def keep_connections_alive(api) -> None:
    """A Unix-socket client (others are left as they are) keeps its connections between calls and stops reading
    the environment on every call: requests looks for proxy variables and netrc before each request (a third of
    its CPU per call, measured), none of which applies to a local socket."""
    adapter = api.adapters.get("http+docker://")
    if type(adapter) is UnixHTTPAdapter:
        api.mount("http+docker://", KeepAliveUnixAdapter(adapter.socket_path, adapter.timeout,
                                                         max_pool_size=adapter.max_pool_size))
        adapter.close()
        api.trust_env = False


class DockerRunner:
    """Runs jobs in fresh Docker containers created from one image, pinned by its id."""

    name = "docker"

    def __init__(self, image: str, *, job_root: Path, client=None, container_log_bytes: int = 256 * 1024,
                 orphan_age_seconds: float = 2 * 3600.0) -> None:
        """Args:
            image: tag or id of the sandbox image; resolved to its immutable id once, here.
            job_root: host directory for per-job files (bind-mounted into containers; must be on the engine's host).
            client: a Docker SDK client (default: from the environment).
            container_log_bytes: size of the engine's log file per container (json-file driver, one file): a job
                that prints gigabytes cannot fill the host's disk.
            orphan_age_seconds: a job container of another host is an orphan once older than this.
        """
        self.client = client or connect()
        try:
            self.image_id = self.client.images.get(image).id
        except docker.errors.ImageNotFound as error:
            raise InfrastructureError(f"the sandbox image {image} is missing; run `grader sandbox ensure-image`") \
                from error
        except ENGINE_ERRORS as error:
            raise InfrastructureError(f"the Docker engine is not reachable: {error}") from error
        self.image = image
        self.job_root = Path(job_root).resolve()
        # Inputs are mounted read-only into a container whose uid is not the worker's: one copy can serve every job.
        self.shared_inputs = SharedInputs(self.job_root)
        self.container_log_bytes = int(container_log_bytes)
        self.orphan_age_seconds = float(orphan_age_seconds)
        self.warm_pool = None
        self.jobs_running = 0
        self.cgroup_driver: str | None = None  # the engine's, asked once when a job first needs it

    def keep_warm(self, template: SandboxJob | None, size: int) -> None:
        """Keeps `size` containers for jobs like `template` started ahead (sandbox/docker_warm.py); 0 stops."""
        from sandbox.docker_warm import WarmPool

        if self.warm_pool is not None:
            self.warm_pool.close()
        self.warm_pool = WarmPool(self, template, size) if size > 0 else None

    def run(self, job: SandboxJob, on_progress: ProgressCallback | None = None) -> SandboxOutcome:
        check_job(job)
        self.jobs_running += 1
        try:
            return self._run(job, on_progress)
        except (SystemExit, KeyboardInterrupt):
            if self.warm_pool is not None:
                self.warm_pool.close()  # the process is stopping: no job will come for the waiting containers
            raise
        finally:
            self.jobs_running -= 1

    def _run(self, job: SandboxJob, on_progress: ProgressCallback | None) -> SandboxOutcome:
        warm = self.warm_pool.take(job) if self.warm_pool is not None else None
        with infrastructure_faults("the Docker engine failed during the job", *ENGINE_ERRORS), \
                (warm.job_dir if warm else JobDirectory(self.job_root, job, self.shared_inputs)) as job_dir:

            def start() -> ContainerJob:
                if warm is None:
                    started = self._start(job, job_dir)
                else:
                    job_dir.write_job(job)
                    started = warm.go()
                started.log_tail_when_ok = job.log_tail_when_ok
                return started

            try:
                return run_job(job, job_dir, start, backend=self.name, on_progress=on_progress,
                               image_digest=self.image_id)
            except BaseException:
                # Failed or interrupted (SIGTERM, Ctrl-C) at any point, perhaps between the engine creating the
                # container and its id reaching us: whatever carries this job's label goes now, not at its limit.
                remove_job_containers(self.client, job_dir.job_id)
                raise
            finally:
                if self.warm_pool is not None:
                    self.warm_pool.refill(job)

    def _start(self, job: SandboxJob, job_dir: JobDirectory) -> "ContainerJob":
        try:
            container = self.create(self.container_options(job, job_dir))
        except docker.errors.ImageNotFound as error:
            raise InfrastructureError(f"the sandbox image {self.image} ({self.image_id}) is gone") from error
        started = ContainerJob(container, job.limits.log_tail_bytes)
        container.start()
        started.watch()
        return started

    def create(self, options: dict):
        """Creates a job container from `container_options`. Through the engine API's own create call: the SDK's
        `containers.create` inspects every new container right after, a second engine call per job that nothing
        here reads (issue 14: each call costs the engine CPU)."""
        # use_config_proxy=False: the SDK would otherwise copy proxy variables from the worker's ~/.docker/config.json
        # into the job's environment, which holds nothing of the host's.
        response = self.client.api.create_container(self.image_id, use_config_proxy=False, **options)
        return self.client.containers.prepare_model({"Id": response["Id"]})

    def container_options(self, job: SandboxJob, job_dir: JobDirectory) -> dict:
        """Everything the engine's create call is told besides the image (see the module doc)."""
        limits = job.limits
        mounts = [Mount(SANDBOX_SUBMISSION.rsplit("/", 1)[0], str(job_dir.submission_dir), type="bind",
                        read_only=True),
                  Mount(SANDBOX_INPUTS, str(job_dir.inputs_dir), type="bind", read_only=True),
                  Mount(SANDBOX_OUT, str(job_dir.out_dir), type="bind", read_only=False)]
        mounts += [Mount(f"/job/data/{name}", str(Path(host_dir).resolve()), type="bind", read_only=True)
                   for name, host_dir in sorted(job.data_dirs.items())]
        memory = int(limits.memory_bytes)
        host_config = self.client.api.create_host_config(
            network_mode="none", ipc_mode="none", read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,noexec,size={int(limits.tmpfs_bytes)},uid=65534,gid=65534,mode=0700"},
            mem_limit=memory, memswap_limit=memory, mem_swappiness=0, nano_cpus=int(limits.cpus * 1e9),
            cpu_shares=int(limits.cpu_shares), cgroup_parent=self.cgroup_parent(limits),
            pids_limit=int(limits.pids), cap_drop=["ALL"],
            security_opt=["no-new-privileges"], init=True, oom_score_adj=OOM_SCORE_ADJ,
            ulimits=[Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
                     Ulimit(name="fsize", soft=limits.fsize_bytes, hard=limits.fsize_bytes),
                     Ulimit(name="core", soft=0, hard=0)],
            mounts=mounts, auto_remove=False,
            log_config=LogConfig(type="json-file", config={"max-size": str(self.container_log_bytes),
                                                           "max-file": "1"}))
        return dict(
            command=sandbox_argv(job), user="65534:65534", working_dir="/tmp", hostname="sandbox",
            network_disabled=True, environment=job_environment(limits), host_config=host_config,
            labels={JOB_LABEL: "1", JOB_ID_LABEL: job_dir.job_id, HOST_LABEL: socket.gethostname(),
                    WORKER_PID_LABEL: str(os.getpid())},
            stdin_open=False, tty=False)

    def cgroup_parent(self, limits: SandboxLimits) -> str | None:
        """The cgroup the job's container goes under; None: the engine's default.

        With the cgroupfs driver every container is a child of one engine group (/docker), and the kernel gives
        that group one normal weight in all, however its members are weighted inside it. A low-weight job there
        yields only to the other containers: whenever no correctness container is runnable (the worker, the
        engine, Postgres and the API do half of a grade's work, outside any container) the group's whole weight
        is the training jobs'. Measured (issue 14): a busy host process beside two training containers at
        weight 64 got 0.70-0.80 of a core with them in the engine's group (weight 2 there: the same), 0.87-0.93
        with them at the top of the hierarchy, where the job's weight is compared with every process of the host.
        """
        if not limits.cpu_shares_host_wide:
            return None
        if self.cgroup_driver is None:
            with infrastructure_faults("the Docker engine is not reachable", *ENGINE_ERRORS):
                self.cgroup_driver = str(self.client.info().get("CgroupDriver", ""))
        return HOST_WIDE_CGROUP_PARENTS.get(self.cgroup_driver)

    def cleanup_orphans(self, *, everything: bool = False) -> int:
        """Removes job containers and job directories left by workers that are gone; returns the container count.

        A container of this host is an orphan when its worker pid is dead. One started from another host (another
        worker container on the same engine) cannot be checked that way: it is an orphan only when older than
        `orphan_age_seconds`, longer than any job may run. `everything` removes all job containers (for
        `grader sandbox cleanup --all` with no worker running).
        """
        return cleanup_orphans(self.client, self.job_root, everything=everything,
                               orphan_age_seconds=self.orphan_age_seconds)


class ContainerJob:
    """A started container as `sandbox.core.run_job` drives it. A thread blocks in the engine's wait call, whose
    answer carries the exit code."""

    def __init__(self, container, log_tail_bytes: int) -> None:
        self.container = container
        self.log_tail_bytes = log_tail_bytes
        self.finished = threading.Event()
        self.wait_errors: list[BaseException] = []
        self.exit_code: int | None = None
        self.log_tail_when_ok = True  # False: a job that exits 0 skips the engine's logs call (SandboxJob's field)

    def watch(self) -> None:
        threading.Thread(target=self._wait_for_exit, daemon=True).start()

    def _wait_for_exit(self) -> None:
        try:
            self.exit_code = self.container.wait().get("StatusCode")
        except BaseException as error:  # noqa: BLE001 - handed to the caller by wait()
            self.wait_errors.append(error)
        finally:
            self.finished.set()

    def wait(self, seconds: float) -> bool:
        ended = self.finished.wait(seconds)
        if self.wait_errors:
            raise InfrastructureError(f"waiting for the job container failed: {self.wait_errors[0]}") \
                from self.wait_errors[0]
        return ended

    def kill(self) -> None:
        try:
            self.container.kill()
        except docker.errors.APIError as error:
            if error.status_code != 409:  # 409: it ended on its own between the check and the kill
                raise

    def end(self) -> JobEnd:
        exit_code, oom_killed = self.exit_code, False
        if exit_code != 0:
            # Only a job that did not finish cleanly is asked whether the kernel killed it for memory: exit 0 is a
            # harness that wrote its result and returned (an inspect per job costs the engine CPU, issue 14).
            state = self.container.client.api.inspect_container(self.container.id).get("State", {})
            exit_code, oom_killed = state.get("ExitCode"), bool(state.get("OOMKilled"))
        if exit_code == STOPPED_FROM_OUTSIDE_EXIT:
            # The sandbox never sends SIGTERM (its limits kill with SIGKILL): the engine stopping its containers as
            # it shuts down, or an operator's `docker stop`, did. Not the student's crash: the run waits and is
            # retried. (A file that sends itself SIGTERM only delays its own grade until the retries give up.)
            raise InfrastructureError("the job container was stopped from outside (SIGTERM): the Docker engine "
                                      "shutting down, or an operator")
        return JobEnd(exit_code=exit_code, oom_killed=oom_killed, log_tail=self._log_tail(exit_code))

    def _log_tail(self, exit_code: int | None) -> str:
        if exit_code == 0 and not self.log_tail_when_ok:
            return ""
        return self._logs()[-self.log_tail_bytes:].decode("utf-8", errors="replace")

    def _logs(self) -> bytes:
        """The container log's last lines, stdout and stderr interleaved. Read from the engine's logs endpoint
        directly: the SDK's `logs` inspects the container first (for its tty setting; job containers have none)."""
        api = self.container.client.api
        response = api.get(f"{api.base_url}/v{api.api_version}/containers/{self.container.id}/logs",
                           params={"stdout": 1, "stderr": 1, "tail": LOG_TAIL_LINES}, timeout=api.timeout)
        response.raise_for_status()
        return demultiplex(response.content)

    def destroy(self) -> None:
        remove_container(self.container)


STOPPED_FROM_OUTSIDE_EXIT = SIGNAL_EXIT_BASE + signal.SIGTERM  # what docker-init reports for a SIGTERM'd job


def demultiplex(stream: bytes) -> bytes:
    """The payload of the engine's multiplexed stdout/stderr stream (frames of an 8-byte header: stream type,
    three zero bytes, big-endian payload size), in order."""
    chunks, offset = [], 0
    while offset + 8 <= len(stream):
        size = int.from_bytes(stream[offset + 4:offset + 8], "big")
        chunks.append(stream[offset + 8:offset + 8 + size])
        offset += 8 + size
    return b"".join(chunks)


def remove_container(container) -> None:
    """Force-removes a job container; one already gone or being removed by someone else is fine."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        if error.status_code == 409 and "already in progress" in str(error):
            return  # another remover (a cleanup) got there first
        raise InfrastructureError(f"removing the job container failed: {error}") from error


def remove_job_containers(client, job_id: str) -> None:
    """Removes the container of one job by its label, if the engine has one (errors ignored: best effort)."""
    try:
        for container in client.containers.list(all=True, filters={"label": f"{JOB_ID_LABEL}={job_id}"}):
            remove_container(container)
    except (*ENGINE_ERRORS, InfrastructureError):
        pass


def cleanup_orphans(client, job_root: Path | None = None, *, everything: bool = False,
                    only_label: str | None = None, orphan_age_seconds: float = 2 * 3600.0) -> int:
    """See `DockerRunner.cleanup_orphans`. `only_label` ("key=value") narrows it to matching containers (tests)."""
    removed = 0
    labels_filter = [f"{JOB_LABEL}=1"] + ([only_label] if only_label else [])
    for container in client.containers.list(all=True, filters={"label": labels_filter}):
        if not everything and not _is_orphan(container, orphan_age_seconds):
            continue
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.APIError:
            pass  # gone already, or its removal is in progress elsewhere
    if job_root is not None:
        remove_orphan_job_dirs(job_root)
    return removed


def _is_orphan(container, orphan_age_seconds: float) -> bool:
    labels = container.labels or {}
    pid_text = labels.get(WORKER_PID_LABEL, "")
    if labels.get(HOST_LABEL) == socket.gethostname() and pid_text.isdigit():
        return not pid_alive(int(pid_text))
    created = container.attrs.get("Created", "")
    try:
        started = datetime.datetime.fromisoformat(created[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return False
    age = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()
    return age > orphan_age_seconds
