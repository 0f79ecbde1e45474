"""Faults on the trusted side are InfrastructureError, never a grade (issue 11), tried against the real engine.

The engine is made to fail the way it fails in production, without stopping the shared engine: a client whose
socket does not exist; a proxy in front of the real socket that is cut while a job runs; a proxy that accepts and
never answers (a hung engine: the call times out).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from pathlib import Path

import docker
import pytest

from grader.pipeline import grade_submission
from grader.settings import get_settings
from sandbox.docker_backend import JOB_LABEL, WORKER_PID_LABEL, DockerRunner
from sandbox.runner import InfrastructureError, SandboxJob
from sandbox.select import job_root
from tests.sandbox.helpers import TEST_LIMITS, probe

pytestmark = pytest.mark.docker

ENGINE_SOCKET = "/var/run/docker.sock"
GOOD = (Path(__file__).resolve().parents[1] / "fixtures" / "submissions" / "good_vectorized.py").read_bytes()


class EngineProxy:
    """A Unix socket in front of the engine's: forwards, or (black_hole) accepts and never answers; `cut()` closes
    every connection at once, as an engine that dies does."""

    def __init__(self, directory: Path, *, black_hole: bool = False) -> None:
        self.path = directory / f"engine-{uuid.uuid4().hex[:8]}.sock"
        self.black_hole = black_hole
        self.sockets: list[socket.socket] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.listener.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.black_hole:
                continue
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(ENGINE_SOCKET)
            self.sockets.append(engine)
            for source, target in ((client, engine), (engine, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        self.listener.close()
        for end in self.sockets:
            try:
                end.shutdown(socket.SHUT_RDWR)
                end.close()
            except OSError:
                pass


@pytest.fixture
def real_runner(docker_only_runner):
    return docker_only_runner


def runner_through(url: str, real_runner: DockerRunner, *, timeout_seconds: int = 10) -> DockerRunner:
    """A runner built while the engine answered, whose engine is then reached through `url`."""
    runner = DockerRunner(real_runner.image_id, job_root=job_root(get_settings()), client=real_runner.client)
    runner.client = docker.DockerClient(base_url=url, timeout=timeout_seconds,
                                        version=real_runner.client.api.api_version)  # no call at construction
    return runner


def leftover(real_runner) -> list:
    return real_runner.client.containers.list(all=True, filters={"label": [f"{JOB_LABEL}=1",
                                                                          f"{WORKER_PID_LABEL}={os.getpid()}"]})


def test_an_engine_socket_that_does_not_exist_is_an_infrastructure_error_not_a_grade(real_runner, tmp_path):
    broken = runner_through(f"unix://{tmp_path}/no-engine.sock", real_runner)
    with pytest.raises(InfrastructureError, match="Docker engine"):
        broken.run(probe("report({'ok': 1})\n"))
    with pytest.raises(InfrastructureError):
        grade_submission(GOOD, stages=["correctness"], runner=broken)


def test_an_engine_lost_while_the_job_runs_is_an_infrastructure_error(real_runner, tmp_path):
    proxy = EngineProxy(tmp_path)
    runner = runner_through(proxy.url, real_runner)
    seen: list[str] = []

    def cut_once_running(line: str) -> None:
        seen.append(line)
        proxy.cut()

    source = ("import time\nopen('/job/out/progress.jsonl', 'a').write('{\"running\": 1}\\n')\n"
              "time.sleep(30)\nreport({'ok': 1})\n")
    started = time.monotonic()
    try:
        with pytest.raises(InfrastructureError, match="waiting for the job container failed"):
            runner.run(probe(source, wall_seconds=60.0), on_progress=cut_once_running)
        assert seen and time.monotonic() - started < 20  # the fault ends the wait, not the job's wall clock
    finally:
        for container in leftover(real_runner):  # the cut engine could not be asked to remove it
            container.remove(force=True)


def test_an_engine_that_does_not_answer_times_out_as_an_infrastructure_error(real_runner, tmp_path):
    proxy = EngineProxy(tmp_path, black_hole=True)
    runner = runner_through(proxy.url, real_runner, timeout_seconds=1)
    started = time.monotonic()
    try:
        with pytest.raises(InfrastructureError, match="Timeout|timed out"):
            runner.run(SandboxJob("smoke", b"pass\n", limits=TEST_LIMITS))
        assert time.monotonic() - started < 15
    finally:
        proxy.cut()


def test_an_os_error_preparing_the_job_is_an_infrastructure_error(real_runner, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the job root should be")
    runner = DockerRunner(real_runner.image_id, job_root=blocked / "jobs", client=real_runner.client)
    with pytest.raises(InfrastructureError, match="FileExistsError|NotADirectoryError|FileNotFoundError"):
        runner.run(probe("report({'ok': 1})\n"))


def test_the_students_own_failures_stay_outcomes(real_runner):
    assert real_runner.run(probe("while True:\n    pass\n", wall_seconds=2.0)).status == "timeout"
    assert real_runner.run(probe("import os\nos.abort()\n")).status == "crashed"
    assert real_runner.run(probe("raise SystemExit(4)\n")).status == "exited"
