"""Pre-started Docker containers for correctness jobs (issue 14): the engine's create and start calls and the
Python, NumPy and kit start-up happen before the job arrives instead of while a student waits.

Still one fresh container per job and one student per container: a warm container is created exactly like a
cold one (same image, limits, mounts, labels; `DockerRunner.container_options`), runs
`sandbox/harness/warm_start.py`, which imports what the harness imports before any student code and then blocks
on a FIFO in its read-only inputs. The worker writes the job's submission and inputs into that container's own
job directory, says go through the FIFO, and from then on the job is walked exactly as a cold one
(`sandbox.core.run_job`: wall clock from go, progress, classification, removal). A container that takes a job is
removed afterwards and a new one is started behind it; one that died while waiting is discarded, never reused.

Only jobs whose container-level settings equal the pool's (harness, arguments, data, and every limit the
container itself enforces) are served warm; every other job runs cold. Idle containers carry the worker's pid
label, so a worker that dies leaves nothing `cleanup_orphans` does not remove; a worker that stops removes them
(`close_all`).
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import time
import weakref
from dataclasses import dataclass

from sandbox.core import SANDBOX_INPUTS, sandbox_argv
from sandbox.docker_backend import ContainerJob, DockerRunner, remove_container
from sandbox.jobdir import JobDirectory
from sandbox.runner import InfrastructureError, SandboxJob, SandboxLimits

log = logging.getLogger(__name__)

GO_FIFO = "go"
# A warm container that is still starting when its job arrives gets this long to reach its FIFO.
GO_TIMEOUT_SECONDS = 30.0
GO_POLL_SECONDS = 0.005
# After a failed start (engine busy or gone), the pool waits this long before trying again; jobs run cold meanwhile.
RETRY_SECONDS = 5.0
# How long closing waits for a container that is being started, so that it is removed too.
CLOSE_WAIT_SECONDS = 60.0
# Limits the host enforces itself: a job may differ from the pool in these and still be served warm.
HOST_SIDE_LIMITS = ("wall_seconds", "output_bytes", "progress_bytes", "log_tail_bytes")

_pools: "weakref.WeakSet[WarmPool]" = weakref.WeakSet()


def container_fields(limits: SandboxLimits) -> dict:
    """The limits baked into a container when it is created."""
    return {name: value for name, value in vars(limits).items() if name not in HOST_SIDE_LIMITS}


@dataclass
class WarmContainer:
    """A started container waiting for its one job, and that job's directory."""

    job_dir: JobDirectory
    started: ContainerJob

    def alive(self) -> bool:
        return not self.started.finished.is_set()

    def go(self) -> ContainerJob:
        """Tells the waiting process that its job is in place (submission and inputs written)."""
        fifo = self.job_dir.inputs_dir / GO_FIFO
        deadline = time.monotonic() + GO_TIMEOUT_SECONDS
        while True:
            try:
                handle = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as error:  # ENXIO: nobody reads it yet (the container is still starting)
                if error.errno != errno.ENXIO or not self.alive() or time.monotonic() > deadline:
                    raise InfrastructureError(f"the warm sandbox did not take its job: {error}") from error
            time.sleep(GO_POLL_SECONDS)
        try:
            os.write(handle, b"go\n")
        finally:
            os.close(handle)
        return self.started

    def discard(self) -> None:
        try:
            self.started.destroy()
        except InfrastructureError:
            pass  # the container is labelled: cleanup_orphans removes it later
        self.job_dir.remove()


class WarmPool:
    """Keeps `size` containers for jobs like `template` started ahead; each takes one job and is removed."""

    def __init__(self, runner: DockerRunner, template: SandboxJob, size: int) -> None:
        self.runner, self.template, self.size = runner, template, size
        self.ready: queue.Queue[WarmContainer] = queue.Queue()
        self.wanted = threading.Event()  # set by `refill`: after the first fitting job, so an idle queue costs none
        self.closed = False
        self.filling = False
        self.served = 0  # jobs that found a warm container
        self.thread = threading.Thread(target=self._keep_filled, name="warm-sandboxes", daemon=True)
        self.thread.start()
        _pools.add(self)

    def fits(self, job: SandboxJob) -> bool:
        def container_of(one: SandboxJob) -> tuple:
            return one.harness, one.args, dict(one.data_dirs), container_fields(one.limits)

        return GO_FIFO not in job.inputs and container_of(job) == container_of(self.template)

    def take(self, job: SandboxJob) -> WarmContainer | None:
        """A live warm container for `job`, or None (the job then runs cold)."""
        if self.closed or not self.fits(job):
            return None
        while True:
            try:
                warm = self.ready.get_nowait()
            except queue.Empty:
                return None
            if warm.alive():
                self.served += 1
                return warm
            warm.discard()

    def refill(self, job: SandboxJob) -> None:
        """After a job like the pool's ended, starts the missing containers in the background. Called when the job
        has ended rather than when it starts, so the next container's start-up does not compete with it for the
        CPU; and only after jobs that fit, so a worker that never runs such jobs keeps no container waiting."""
        if self.fits(job):
            self.wanted.set()

    def close(self) -> None:
        """Removes every waiting container, also one being started right now; jobs run cold from now on."""
        self.closed = True
        self.wanted.set()
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        while self.filling and threading.current_thread() is not self.thread and time.monotonic() < deadline:
            time.sleep(0.02)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self.ready.get_nowait().discard()
            except queue.Empty:
                return

    def _keep_filled(self) -> None:
        while not self.closed:
            self.wanted.wait()
            self.filling = True
            self.wanted.clear()
            self._fill()
            self.filling = False

    def settled(self) -> bool:
        """Nothing is being started right now (every container of the pool is waiting, or none is wanted)."""
        return not self.filling and (self.closed or not self.wanted.is_set())

    def _fill(self) -> None:
        while not self.closed and self.ready.qsize() < self.size:
            try:
                warm = self._start_one()
            except Exception as error:  # noqa: BLE001 - the engine is busy or gone: jobs run cold meanwhile
                log.warning("could not start a warm sandbox: %s", error)
                time.sleep(RETRY_SECONDS)
                self.wanted.set()
                return
            self.ready.put(warm)
            if self.closed:  # closed while this one was starting
                self._drain()

    def _start_one(self) -> WarmContainer:
        runner, template = self.runner, self.template
        job_dir = JobDirectory(runner.job_root, None, runner.shared_inputs)
        try:
            os.mkfifo(job_dir.inputs_dir / GO_FIFO, 0o644)
            options = runner.container_options(template, job_dir)
            options["command"] = sandbox_argv(template, launcher="warm_start.py",
                                              launcher_args=(f"{SANDBOX_INPUTS}/{GO_FIFO}",))
            container = runner.create(options)
        except BaseException:
            job_dir.remove()
            raise
        started = ContainerJob(container, template.limits.log_tail_bytes)
        try:
            container.start()
        except BaseException:
            remove_container(container)
            job_dir.remove()
            raise
        started.watch()
        return WarmContainer(job_dir, started)


def waiting(settle_seconds: float = 60.0) -> list[WarmContainer]:
    """Every container the pools of this process keep waiting, once none is being started (for leftover checks)."""
    deadline = time.monotonic() + settle_seconds
    pools = list(_pools)
    while not all(pool.settled() for pool in pools) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [warm for pool in pools for warm in list(pool.ready.queue)]


def close_all(*, idle_only: bool = False) -> None:
    """Removes the waiting containers of every pool in this process (a stopping worker calls this). With
    `idle_only`, pools whose runner is in the middle of a job are left alone (that job's runner closes its pool as
    the interruption unwinds through it), so this is safe from a signal handler."""
    for pool in list(_pools):
        if not (idle_only and pool.runner.jobs_running):
            pool.close()
