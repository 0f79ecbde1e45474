"""The students' GitHub Actions workflow: its shape, and its shell steps run here against the live server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grader.settings import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / "examples" / "github-actions" / "grade.yml"
GOOD = PROJECT_ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"


def _steps() -> list[dict]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "push" in triggers
    [job] = workflow["jobs"].values()
    return job["steps"]


def test_workflow_submits_with_the_token_from_a_secret():
    steps = _steps()
    assert any(step.get("uses", "").startswith("actions/setup-python@") for step in steps)
    [submit] = [step for step in steps if "grader submit" in step.get("run", "")]
    assert submit["run"].startswith("grader submit spatial.py --assignment ")
    assert submit["env"]["GRADER_TOKEN"] == "${{ secrets.GRADER_TOKEN }}"


@pytest.mark.docker
@pytest.mark.slow
def test_workflow_steps_run_against_the_server(service, tmp_path):
    live, seed = service
    repository = tmp_path / "student-repo"
    repository.mkdir()
    (repository / "spatial.py").write_bytes(GOOD.read_bytes())
    runner_temp, github_path = tmp_path / "runner", tmp_path / "github_path"
    runner_temp.mkdir()
    github_path.write_text("")
    # `python` is this venv's interpreter (httpx already installed, so pip needs no network).
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "RUNNER_TEMP": str(runner_temp), "GITHUB_PATH": str(github_path),
           "GRADER_SERVER": live.base_url, "GRADER_ASSIGNMENT": seed.assignment_slug,
           "GITHUB_REPOSITORY": "ann/cnn-homework", "GITHUB_SHA": "0123456789abcdef"}
    install, submit = [step for step in _steps() if "run" in step]
    subprocess.run(["bash", "-euo", "pipefail", "-c", install["run"]], env=env, cwd=repository, check=True,
                   timeout=120)
    added = github_path.read_text().split()
    env["PATH"] = ":".join(added + [path])
    env["GRADER_TOKEN"] = seed.student_token
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", submit["run"]], env=env, cwd=repository,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED" in result.stdout
    env["GRADER_TOKEN"] = "gt_revoked"
    refused = subprocess.run(["bash", "-euo", "pipefail", "-c", submit["run"]], env=env, cwd=repository,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "refused your token" in refused.stderr
