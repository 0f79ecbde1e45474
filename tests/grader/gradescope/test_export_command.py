"""`grader export gradescope`: from a spec file (no database) and from an assignment in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from grader.settings import PROJECT_ROOT
from grader.spec import DEFAULT_SPEC_PATH

SEED = ("from grader.store.migrate import upgrade_head; from grader.store.db import session_scope; "
        "from grader.seed import seed_demo; upgrade_head(); "
        "exec('with session_scope() as db: seed_demo(db)')")


def _grader(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=env, timeout=120)


def test_export_from_a_spec_file_needs_no_database(tmp_path):
    output = tmp_path / "autograder.zip"
    completed = _grader("export", "gradescope", "--spec", str(DEFAULT_SPEC_PATH), "-o", str(output),
                        env={**os.environ, "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert completed.returncode == 0, completed.stderr
    assert "left out the cifar10 stage" in completed.stderr
    with zipfile.ZipFile(output) as archive:
        names = set(archive.namelist())
        assert {"setup.sh", "run_autograder", "requirements.txt", "spec.toml", "bundle.json"} <= names
        assert "kit/tinytorch/core/tensor.py" in names and "sandbox/harness/correctness.py" in names
        assert archive.getinfo("run_autograder").external_attr >> 16 & 0o777 == 0o755
        described = json.loads(archive.read("bundle.json"))
        assert "numpy==2.2.6" in archive.read("requirements.txt").decode()
    assert described["stages"] == ["correctness"] and described["max_score"] > 0


def test_export_of_an_assignment_in_the_store(tmp_path):
    env = {**os.environ, "DATABASE_URL": "", "BROKER_URL": "", "DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-c", SEED], check=True, cwd=PROJECT_ROOT, env=env, capture_output=True)
    output = tmp_path / "quick.zip"
    completed = _grader("export", "gradescope", "--assignment", "spatial-correctness", "-o", str(output), env=env)
    assert completed.returncode == 0, completed.stderr
    with zipfile.ZipFile(output) as archive:
        assert json.loads(archive.read("bundle.json"))["assignment"] == "spatial-correctness"
    missing = _grader("export", "gradescope", "--assignment", "nope", "-o", str(tmp_path / "x.zip"), env=env)
    assert missing.returncode == 2 and "no assignment 'nope'" in missing.stderr and "spatial-correctness" in missing.stderr
    assert not (tmp_path / "x.zip").exists()
