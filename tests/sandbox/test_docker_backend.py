"""Docker-only behaviour: pinned image, container removal, orphan cleanup, infrastructure faults."""

from __future__ import annotations

import json

import os
import socket
import subprocess
import sys
import uuid

import docker
import pytest

from sandbox.docker_backend import HOST_LABEL, JOB_LABEL, WORKER_PID_LABEL, DockerRunner, cleanup_orphans
from sandbox.runner import InfrastructureError
from tests.sandbox.helpers import probe, reported

pytestmark = pytest.mark.docker


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


TEST_LABEL = f"cnn-grader.test-run={uuid.uuid4().hex}"


def _labelled_container(client, image_id: str, worker_pid: int, host: str | None = None):
    key, _, value = TEST_LABEL.partition("=")
    return client.containers.create(image_id, command=["sleep", "60"], network_mode="none",
                                    labels={JOB_LABEL: "1", HOST_LABEL: host or socket.gethostname(),
                                            WORKER_PID_LABEL: str(worker_pid), key: value})


def test_each_job_gets_a_fresh_container_that_is_removed(docker_only_runner):
    client = docker_only_runner.client
    # Other checkouts run jobs on the same engine: only this process's containers count.
    ours = {"label": [f"{JOB_LABEL}=1", f"{WORKER_PID_LABEL}={os.getpid()}"]}
    before = {c.id for c in client.containers.list(all=True, filters=ours)}
    source = "import socket\nreport({'hostname': socket.gethostname(), 'marker': open('/proc/self/cgroup').read()})\n"
    first = docker_only_runner.run(probe(source))
    second = docker_only_runner.run(probe(source))
    assert first.status == second.status == "ok"
    assert first.result != second.result  # different cgroups: different containers
    after = {c.id for c in client.containers.list(all=True, filters=ours)}
    assert after <= before


def test_orphans_of_dead_workers_are_removed_and_live_ones_kept(docker_only_runner):
    client = docker_only_runner.client
    orphan = _labelled_container(client, docker_only_runner.image_id, _dead_pid())
    live = _labelled_container(client, docker_only_runner.image_id, os.getpid())
    # A recent container of another worker host: its pid cannot be checked from here, so it is kept.
    foreign = _labelled_container(client, docker_only_runner.image_id, _dead_pid(), host="another-worker")
    try:
        # Other engineers' jobs run on this engine: every cleanup here is narrowed to this test's containers.
        removed = cleanup_orphans(client, only_label=TEST_LABEL)
        assert removed == 1
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(orphan.id)
        assert client.containers.get(live.id).id == live.id
        assert client.containers.get(foreign.id).id == foreign.id
        assert cleanup_orphans(client, everything=True, only_label=TEST_LABEL) == 2
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(live.id)
    finally:
        for container in (orphan, live, foreign):
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


def test_missing_image_is_an_infrastructure_error(docker_only_runner, tmp_path):
    with pytest.raises(InfrastructureError, match="missing"):
        DockerRunner("cnn-grader-sandbox:no-such-tag", job_root=tmp_path, client=docker_only_runner.client)


def test_unreachable_engine_is_an_infrastructure_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    with pytest.raises(InfrastructureError, match="not reachable"):
        DockerRunner("cnn-grader-sandbox:latest", job_root=tmp_path)


def test_image_is_pinned_by_id_when_the_tag_moves(docker_only_runner, tmp_path):
    client = docker_only_runner.client
    client.images.get(docker_only_runner.image_id).tag("cnn-grader-sandbox", "pin-test")
    try:
        runner = DockerRunner("cnn-grader-sandbox:pin-test", job_root=tmp_path, client=client)
        client.images.get(runner.image_id)
        client.images.remove("cnn-grader-sandbox:pin-test")
        outcome = runner.run(probe("report({'ok': 1})\n"))
        assert outcome.status == "ok" and outcome.image_digest == docker_only_runner.image_id
    finally:
        try:
            client.images.remove("cnn-grader-sandbox:pin-test")
        except docker.errors.ImageNotFound:
            pass


def test_a_harness_missing_from_the_image_is_an_infrastructure_error(docker_only_runner):
    from sandbox.runner import SandboxJob

    with pytest.raises(InfrastructureError, match="no harness"):
        docker_only_runner.run(SandboxJob("no_such_harness", b"pass\n"))
    with pytest.raises(ValueError):
        docker_only_runner.run(SandboxJob("../smoke", b"pass\n"))


def test_a_job_stopped_from_outside_is_an_infrastructure_error_not_a_crash(docker_only_runner):
    """The engine stops its containers with SIGTERM as it shuts down (tests/faults/test_fault_engine.py met it
    mid-job): that must delay the run, not grade the student's file as crashed. A SIGKILL death stays a crash."""
    with pytest.raises(InfrastructureError, match="stopped from outside"):
        docker_only_runner.run(probe("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n"))
    crashed = docker_only_runner.run(probe("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n"))
    assert crashed.status == "crashed"


def test_numpy_modules_loaded_on_first_use_have_bytecode_in_the_image(docker_only_runner):
    # The image is read-only: a module without bytecode there is compiled again in every job that imports it.
    source = ("import importlib.util, os, sys, numpy, numpy.random, numpy.ma, numpy.testing, numpy.fft\n"
              "loaded = [m.__file__ for m in list(sys.modules.values())\n"
              "          if (getattr(m, '__file__', None) or '').endswith('.py') and 'numpy' in m.__file__]\n"
              "report({'loaded': len(loaded), 'without_bytecode': [f for f in loaded\n"
              "        if not os.path.exists(importlib.util.cache_from_source(f))]})\n")
    found = reported(docker_only_runner.run(probe(source, wall_seconds=30.0)))
    assert found["loaded"] > 50 and found["without_bytecode"] == []


def test_a_file_that_claims_the_harness_is_missing_is_its_own_crash(docker_only_runner):
    """python3's words for a missing script, printed by the student's file before it exits 2, are not taken for an
    out-of-date image (which would retry the job as an infrastructure fault): the harness had written progress."""
    from sandbox.runner import SandboxJob

    source = (b"import os, sys\n"
              b"sys.stderr.write(\"python3: can't open file '/opt/harness/correctness.py': [Errno 2] No such file\\n\")\n"
              b"sys.stderr.flush()\nos._exit(2)\n")
    inputs = {"cases.json": json.dumps({"runs": []}).encode(), "arrays.npz": b""}
    outcome = docker_only_runner.run(SandboxJob("correctness", source, inputs=inputs))
    assert (outcome.status, outcome.exit_code) == ("exited", 2)
    assert "can't open file" in outcome.log_tail
