"""`grader sandbox ensure-image --backend auto` (what `make run` calls): Docker when an engine answers, else only
the bubblewrap root filesystem, checked with an empty job."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from grader.settings import PROJECT_ROOT


def _ensure(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", "sandbox", "ensure-image", "--backend", "auto"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=600)


def test_without_an_engine_make_run_falls_back_to_bubblewrap(tmp_path):
    completed = _ensure({**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert completed.returncode == 0, completed.stderr
    assert "no Docker engine" in completed.stderr and "bubblewrap sandbox over" in completed.stdout
    assert "empty job in" in completed.stdout


@pytest.mark.docker
def test_with_an_engine_make_run_uses_the_docker_image():
    completed = _ensure(dict(os.environ))
    assert completed.returncode == 0, completed.stderr
    assert "sandbox image" in completed.stdout and "bubblewrap" not in completed.stdout + completed.stderr
