"""One flow: `grader grade` and the service give the same file under the same spec the same status and score.

The CLI side runs the real command (`python -m grader.cli grade FILE --json --spec SPEC --sandbox docker`); the
service side uploads the same bytes through the API and lets a real Celery worker (Redis broker, Postgres store,
Docker sandbox) grade them stage by stage, the training stage in its own queue. Training runs on a tiny CIFAR-10
look-alike with a three-batch recipe, so each training job takes seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.store.models import GradingRun
from tests.factories import make_world
from tests.service_fixtures import submit, wait_for
from tests.fixtures.cifar10 import write_tiny_archive

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SUBMISSIONS = PROJECT_ROOT / "tests" / "fixtures" / "submissions"
# The loop-style file is left out of the training spec: the speed probe stops its training by the clock, so its
# training outcome depends on how busy the machine is; its correctness is compared in the correctness-only spec.
CLOCK_DEPENDENT_IN_TRAINING = {"good_loop.py"}
# Parses (the upload check passes) but cannot be imported in the sandbox: the correctness stage errors.
BROKEN = b"import numpy as np\nimport scipy.signal\n\n\nclass Conv2D:\n    pass\n"
QUICK_TRAINING = {"epochs": "1", "batch_size": "32", "max_batches_per_epoch": "3", "report_every_batches": "1",
                  "test_subset": "200", "probe": "{ warmup_batches = 1, batches = 1 }"}


def spec_text(*, training: bool, requires: str | None = None) -> str:
    """The default spec, its CIFAR-10 stage cut down to three batches (or removed), `requires` set if given."""
    from grader.assignment_spec import default_spec_toml

    settings = dict(QUICK_TRAINING, **({"requires": requires} if requires is not None else {}))
    lines, section = [], ""
    for line in default_spec_toml().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
            if section == "[stages.cifar10]" and not training:
                continue
            lines.append(line)
            if section == "[stages.cifar10]":
                lines += [f"{key} = {value}" for key, value in settings.items()]
            continue
        if section == "[stages.cifar10]" and (not training or stripped.split("=")[0].strip() in settings):
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def cli_summary(path: Path, spec_path: Path) -> dict:
    completed = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(path), "--json", "--spec",
                                str(spec_path), "--sandbox", "docker"], capture_output=True, text=True,
                               cwd=PROJECT_ROOT, timeout=900)
    assert completed.returncode in (0, 1), completed.stdout + completed.stderr  # 2: not graded at all
    return summary(json.loads(completed.stdout))


def summary(result: dict) -> dict:
    """What must agree: status, score, maximum, and each stage's status and score."""
    return {"status": result["status"], "score": round(float(result["score"]), 4),
            "max_score": round(float(result["max_score"]), 4),
            "stages": [(stage["name"], stage["status"], round(float(stage["score"]), 4))
                       for stage in result["stages"]]}


def service_summaries(client, world, files: dict[str, bytes]) -> dict[str, dict]:
    run_ids = {name: submit(client, world, "alice", source)["run_id"] for name, source in files.items()}

    def finished() -> dict[str, GradingRun] | None:
        with session_scope() as db:
            runs = {name: db.get(GradingRun, run_id) for name, run_id in run_ids.items()}
        done = all(run.status in ("graded", "error", "timeout") for run in runs.values())
        return runs if done else None

    runs = wait_for(finished, 300 + 120 * len(files), "the service to grade every file", interval=2)
    for name, run in runs.items():
        assert (run.status, run.score, run.max_score) == (run.result["status"], run.result["score"],
                                                          run.result["max_score"]), name
    return {name: summary(run.result) for name, run in runs.items()}


def compare(client, tmp_path, spec: str, files: dict[str, bytes], stages: list[str]) -> dict[str, dict]:
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(spec)
    for name, source in files.items():
        (tmp_path / name).write_bytes(source)
    from_cli = {name: cli_summary(tmp_path / name, spec_path) for name in files}
    world = make_world(spec_toml=spec, stages=stages, daily_limit=200)
    from_service = service_summaries(client, world, files)
    for name in files:
        assert from_service[name] == from_cli[name], name
    return from_cli


@pytest.fixture
def tiny_cifar10(monkeypatch, tmp_path_factory):
    """CLI subprocesses and the worker read the same tiny data set (set before the worker starts)."""
    folder = tmp_path_factory.mktemp("cifar10")
    monkeypatch.setenv("CIFAR10_SOURCE", str(write_tiny_archive(folder / "tiny-cifar10.tar.gz")))
    monkeypatch.setenv("CIFAR10_CACHE_DIR", str(folder / "cache"))


def fixture_files(*, leave_out: set[str] = frozenset()) -> dict[str, bytes]:
    files = {path.name: path.read_bytes() for path in sorted(SUBMISSIONS.glob("*.py")) if path.name not in leave_out}
    assert len(files) >= 5
    return files


def test_correctness_only(client, clean_db, start_worker, tmp_path):
    """A correctness-only assignment; the files the training spec leaves out are compared here."""
    start_worker(queues="correctness")
    files = {name: source for name, source in fixture_files().items()
             if name in CLOCK_DEPENDENT_IN_TRAINING | {"good_vectorized.py"}}
    results = compare(client, tmp_path, spec_text(training=False), files | {"broken.py": BROKEN}, ["correctness"])
    assert results["good_vectorized.py"]["status"] == "graded"
    assert results["broken.py"]["status"] == "error"


def test_correctness_then_training(client, clean_db, tiny_cifar10, start_worker, tmp_path):
    start_worker()
    files = fixture_files(leave_out=CLOCK_DEPENDENT_IN_TRAINING) | {"broken.py": BROKEN}
    results = compare(client, tmp_path, spec_text(training=True), files, ["correctness", "cifar10"])
    assert results["good_vectorized.py"]["stages"][1][:2] == ("cifar10", "graded")
    assert results["broken.py"]["stages"][1][:2] == ("cifar10", "skipped")


def test_requires_nothing(client, clean_db, tiny_cifar10, start_worker, tmp_path):
    """With `requires = []` training runs whatever correctness found: the case where the two used to differ."""
    start_worker()
    gated = {"broken.py": BROKEN, "course_forward_only.py": (SUBMISSIONS / "course_forward_only.py").read_bytes()}
    results = compare(client, tmp_path, spec_text(training=True, requires="[]"), gated,
                      ["correctness", "cifar10"])
    assert all(result["stages"][1][1] != "skipped" for result in results.values())
    assert results["broken.py"]["status"] == "error"
