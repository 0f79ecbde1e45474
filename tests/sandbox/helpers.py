"""Shared pieces of the sandbox and security tests: runners over the real backends, probe jobs, leftover checks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from grader.settings import get_settings
from sandbox.runner import MiB, SandboxJob, SandboxLimits, SandboxOutcome
from sandbox.image.build import build_rootfs
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
    if backend == "docker":
        return docker_runner(settings)
    # A host whose image came from a registry has no root filesystem yet: build it (cached) rather than skip.
    build_rootfs(sandbox_cache_dir(settings))
    return bwrap_runner(settings)


def leftover_containers(runner) -> list:
    if runner.name != "docker":
        return []
    return runner.client.containers.list(all=True, filters={"label": f"cnn-grader.worker-pid={os.getpid()}"})


def leftover_job_dirs() -> list[Path]:
    root = job_root(get_settings())
    return sorted(root.glob(f"{os.getpid()}-*")) if root.is_dir() else []


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


@pytest.fixture(scope="session", params=[pytest.param("docker", marks=pytest.mark.docker), "bwrap"])
def runner(request):
    return make_runner(request.param)


@pytest.fixture(scope="session")
def docker_only_runner():
    return make_runner("docker")


@pytest.fixture(autouse=True)
def _nothing_left_behind(request):
    yield
    for name in ("runner", "docker_only_runner"):
        if name in request.fixturenames:
            active = request.getfixturevalue(name)
            assert leftover_containers(active) == []
    assert leftover_job_dirs() == []
