"""Shared pieces of the sandbox and security tests: runners over the real backends, probe jobs, leftover checks."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

from grader.settings import get_settings
from sandbox import docker_warm
from sandbox.image.build import build_rootfs
from sandbox.runner import HARNESS_DIR, MiB, SandboxJob, SandboxLimits, SandboxOutcome
from sandbox.select import bwrap_runner, docker_runner, job_root, sandbox_cache_dir

TEST_LIMITS = SandboxLimits(memory_bytes=256 * MiB, cpus=1.0, pids=32, wall_seconds=10.0, output_bytes=1 * MiB,
                            progress_bytes=64 * 1024, tmpfs_bytes=8 * MiB, nofile=64, fsize_bytes=16 * MiB)
# Start, teardown and a loaded 2-core machine: how far past its wall limit a job may end.
OVERHEAD_ALLOWANCE_S = 8.0

# Prepended to probe submissions: `report(data)` writes JSON to the result file and ends the process at once, so
# the smoke harness does not overwrite it.
REPORT_PRELUDE = '''
import json as _json, os as _os
def report(data):
    with open("/job/out/result.bin", "w") as _handle:
        _json.dump(data, _handle)
    _os._exit(0)
'''


def probe(source: str, **limit_overrides) -> SandboxJob:
    limits = SandboxLimits(**{**TEST_LIMITS.__dict__, **limit_overrides})
    return SandboxJob("smoke", (REPORT_PRELUDE + source).encode(), limits=limits)


def reported(outcome: SandboxOutcome) -> dict:
    assert outcome.status == "ok", (outcome.status, outcome.exit_code, outcome.log_tail)
    return json.loads(outcome.result)


def make_runner(backend: str):
    settings = get_settings()
    if backend.startswith("docker"):
        runner = docker_runner(settings)
        if backend == "docker-warm":
            # Probe jobs under TEST_LIMITS (whatever their wall clock) run in pre-started containers.
            runner.keep_warm(probe(""), 1)
        return runner
    # A host whose image came from a registry has no root filesystem yet: build it (cached) rather than skip.
    build_rootfs(sandbox_cache_dir(settings))
    return bwrap_runner(settings)


def leftover_containers(runner) -> list:
    """This process's job containers, except the pre-started ones still waiting for a job."""
    if runner.name != "docker":
        return []
    waiting = {warm.started.container.id for warm in docker_warm.waiting()}
    return [container for container in runner.client.containers.list(
        all=True, filters={"label": f"cnn-grader.worker-pid={os.getpid()}"}) if container.id not in waiting]


def leftover_job_dirs() -> list[Path]:
    root = job_root(get_settings())
    waiting = {warm.job_dir.path for warm in docker_warm.waiting()}
    return sorted(path for path in root.glob(f"{os.getpid()}-*") if path not in waiting) if root.is_dir() else []


def host_processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains `marker` (a job's background process would show up here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture(scope="session", params=[pytest.param("docker", marks=pytest.mark.docker),
                                        pytest.param("docker-warm", marks=pytest.mark.docker), "bwrap"])
def runner(request):
    """Every backend; "docker-warm" is docker with a pool of one pre-started container (sandbox/docker_warm.py)."""
    made = make_runner(request.param)
    yield made
    if getattr(made, "warm_pool", None) is not None:
        made.keep_warm(None, 0)


@pytest.fixture(scope="session")
def docker_only_runner():
    return make_runner("docker")


@pytest.fixture(autouse=True)
def _nothing_left_behind(request):
    yield
    for name in ("runner", "docker_only_runner"):
        if name in request.fixturenames:
            assert leftover_containers(request.getfixturevalue(name)) == []
    assert leftover_job_dirs() == []


def load_harness_module(file_name: str, module_name: str):
    """A harness module (sandbox/harness/FILE_NAME) loaded on the host under MODULE_NAME, as the tests call it."""
    spec = importlib.util.spec_from_file_location(module_name, HARNESS_DIR / file_name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
