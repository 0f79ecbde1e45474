"""The Gradescope archive in a container laid out like Gradescope's: setup.sh offline, then run_autograder.

Gradescope builds an image from its Ubuntu base by unzipping the archive into /autograder/source, copying
run_autograder to /autograder/run_autograder and running setup.sh; for each submission it starts a fresh container
from that image with the file in /autograder/submission and reads /autograder/results/results.json. This test
does the same with the host's Docker engine, except:

- the base is Debian bookworm (python3, python3-venv, bubblewrap), debootstrapped and `docker import`ed offline
  like the sandbox image, because Gradescope's Ubuntu images are not available here (no registry);
- setup.sh runs with --network none against a local wheel cache (PIP_NO_INDEX, PIP_FIND_LINKS), filled once
  from PyPI with the archive's pinned requirements;
- bubblewrap is in the base image rather than installed by setup.sh (apt has no network here).

Each submission runs twice: with Docker's default confinement, where bubblewrap cannot create namespaces (as we
expect on Gradescope) and student code runs as uid 65534 in a process of its own, and with seccomp, AppArmor and
the masked /proc paths relaxed, where it runs under bubblewrap. results.json is validated against a JSON schema
written from Gradescope's documentation (tests/fixtures/gradescope_results.schema.json).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import pytest

from grader.gradescope.bundle import build_bundle, requirements
from grader.settings import PROJECT_ROOT
from grader.spec import DEFAULT_SPEC_PATH
from grader.stages.correctness import max_score
from grader.spec import load_spec
from tests.fixtures.cleanroom import base_rootfs
from tests.fixtures.mutants import mutant_source

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SCHEMA = json.loads((FIXTURES / "gradescope_results.schema.json").read_text())
GOOD = FIXTURES / "submissions" / "good_vectorized.py"
BASE_PACKAGES = ("python3", "python3-venv", "bubblewrap")
WORK_DIR = PROJECT_ROOT / "var" / "gradescope"
RELAXED = ["--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
           "--security-opt", "systempaths=unconfined"]


def _docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    completed = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, f"docker {' '.join(args[:3])}: {completed.stdout[-3000:]}{completed.stderr[-3000:]}"
    return completed


def _base_image() -> str:
    """Debian bookworm with python3, python3-venv and bubblewrap, imported once (tag by recipe)."""
    tag = "cnn-grader-gradescope-base:" + hashlib.sha256("|".join(BASE_PACKAGES).encode()).hexdigest()[:12]
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    rootfs = base_rootfs(BASE_PACKAGES)
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(["docker", "import", "-c", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                               "-", tag], stdin=tar.stdout, capture_output=True, text=True)
    tar.stdout.close()
    tar.wait()
    assert imported.returncode == 0, imported.stderr
    return tag


def _wheel_cache() -> Path:
    """The archive's pinned requirements as wheels, downloaded from PyPI once."""
    wanted = requirements()
    wheels = WORK_DIR / "wheels"
    marker = wheels / ".requirements"
    if marker.is_file() and marker.read_text() == wanted:
        return wheels
    wheels.mkdir(parents=True, exist_ok=True)
    (WORK_DIR / "requirements.txt").write_text(wanted)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary", ":all:", "-d", str(wheels), "-r",
                    str(WORK_DIR / "requirements.txt")], check=True, capture_output=True)
    marker.write_text(wanted)
    return wheels


@pytest.fixture(scope="module")
def autograder_image(tmp_path_factory):
    """The image Gradescope would build from the archive: unzipped into /autograder/source, setup.sh run offline."""
    base = _base_image()
    wheels = _wheel_cache()
    archive_dir = tmp_path_factory.mktemp("archive")
    build_bundle(archive_dir / "autograder.zip", assignment="spatial", spec_toml=DEFAULT_SPEC_PATH.read_text())
    name = f"gradescope-setup-{uuid.uuid4().hex[:8]}"
    tag = f"cnn-grader-gradescope-test:{name}"
    script = ("set -e; mkdir -p /autograder/source /autograder/results /autograder/submission; "
              "python3 -m zipfile -e /archive/autograder.zip /autograder/source; "
              "cp /autograder/source/run_autograder /autograder/run_autograder; chmod +x /autograder/run_autograder; "
              "cd /autograder/source && bash ./setup.sh")
    try:
        setup = subprocess.run(["docker", "run", "--name", name, "--network", "none",
                                "-v", f"{archive_dir}:/archive:ro", "-v", f"{wheels}:/wheels:ro",
                                "-e", "PIP_NO_INDEX=1", "-e", "PIP_FIND_LINKS=/wheels", base, "bash", "-c", script],
                               capture_output=True, text=True, timeout=600)
        assert setup.returncode == 0, f"setup.sh failed:\n{setup.stdout[-3000:]}\n{setup.stderr[-3000:]}"
        _docker("commit", name, tag)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    yield tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def _grade(image: str, source: bytes | None, tmp_path: Path, security: list[str],
           filename: str = "spatial.py") -> tuple[dict, str]:
    """One Gradescope run in a fresh container: (results.json, stdout of run_autograder)."""
    submission, results = tmp_path / "submission", tmp_path / "results"
    shutil.rmtree(tmp_path, ignore_errors=True)
    submission.mkdir(parents=True)
    results.mkdir()
    if source is not None:
        (submission / filename).write_bytes(source)
    completed = _docker("run", "--rm", "--network", "none", *security, "-v", f"{submission}:/autograder/submission:ro",
                        "-v", f"{results}:/autograder/results", "-w", "/autograder", image, "/autograder/run_autograder")
    document = json.loads((results / "results.json").read_text())
    jsonschema.validate(document, SCHEMA)
    return document, completed.stdout + completed.stderr


@pytest.mark.parametrize("confinement", ["docker-default", "relaxed"])
def test_good_file_earns_every_correctness_point(autograder_image, tmp_path, confinement):
    document, stdout = _grade(autograder_image, GOOD.read_bytes(), tmp_path / "run",
                              RELAXED if confinement == "relaxed" else [])
    expected = max_score(load_spec())
    assert document["score"] == pytest.approx(expected) and expected > 0, f"{document['output']}\n{stdout}"
    assert document["tests"] and all(test["status"] == "passed" for test in document["tests"])
    assert sum(test["score"] for test in document["tests"]) == pytest.approx(expected)
    assert ("bubblewrap" if confinement == "relaxed" else "uid 65534") in stdout, stdout


@pytest.mark.parametrize("confinement", ["docker-default", "relaxed"])
def test_broken_file_fails_checks_with_their_diagnosis(autograder_image, tmp_path, confinement):
    document, stdout = _grade(autograder_image, mutant_source("conv_flipped_kernel"), tmp_path / "run",
                              RELAXED if confinement == "relaxed" else [])
    failed = [test for test in document["tests"] if test["status"] == "failed"]
    assert 0 < document["score"] < max_score(load_spec()), f"{document['output']}\n{stdout}"
    visible_conv = [test for test in failed if test["name"].startswith("conv2d.forward") and test["visibility"] == "visible"]
    assert visible_conv and all("flipped" in test["output"] for test in visible_conv)
    assert "correctness: " in document["output"] and "Each failed check below" in document["output"]


def test_a_submission_without_spatial_py_still_gets_results(autograder_image, tmp_path):
    document, _ = _grade(autograder_image, None, tmp_path / "run", [])
    assert document["score"] == 0 and document["tests"] == []
    assert "No spatial.py was found in your submission" in document["output"]
