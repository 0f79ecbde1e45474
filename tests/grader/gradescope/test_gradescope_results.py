"""results.json and `grader grade --json` as Gradescope reads them: passed/failed only, output, execution_time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from grader.gradescope.results import grade_json, results_json
from grader.result import GradingResult, StageResult
from grader.result import TestResult as CheckResult
from grader.settings import PROJECT_ROOT
from tests.fixtures.mutants import mutant_source

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "gradescope_results.schema.json").read_text())


def _result() -> GradingResult:
    tests = [CheckResult("conv2d.forward.k3", "correctness", 1.5, 1.5, "passed"),
             CheckResult("conv2d.backward.k3", "correctness", 0.0, 1.5, "failed", output="dx differs at [0, 1]"),
             CheckResult("maxpool2d.forward.k2", "correctness", 0.0, 0.75, "timeout", output="stopped after 10 s"),
             CheckResult("simplecnn.forward.b2", "correctness", 0.0, 2.0, "error", visibility="hidden",
                        output="AttributeError: 'SimpleCNN' has no attribute 'fc1'")]
    stage = StageResult("correctness", 1.5, 5.75, "graded", 3.2, message="3 of 4 checks failed")
    return GradingResult(score=1.5, max_score=5.75, status="graded", stages=[stage], tests=tests,
                         grader_version="0.1.0")


def test_results_json_has_only_documented_fields_and_two_statuses():
    document = results_json(_result(), execution_time=3.456)
    jsonschema.validate(document, SCHEMA)
    assert set(document) == {"score", "execution_time", "output", "visibility", "stdout_visibility", "tests"}
    assert [test["status"] for test in document["tests"]] == ["passed", "failed", "failed", "failed"]
    assert document["tests"][2]["output"].startswith("This check ran out of time.\nstopped after 10 s")
    assert document["tests"][3]["output"].startswith("This check could not run.\nAttributeError")
    assert document["tests"][3]["visibility"] == "hidden"
    assert document["execution_time"] == 3.46 and document["score"] == 1.5
    assert "correctness: 1.5 / 5.75 (graded)" in document["output"] and "3 of 4 checks failed" in document["output"]


def test_grade_json_keeps_the_details_and_speaks_gradescope():
    data = grade_json(_result(), execution_time=1.0)
    assert {test["status"] for test in data["tests"]} == {"passed", "failed"}
    assert data["execution_time"] == 1.0 and data["output"].startswith("Score: 1.5 / 5.75")
    assert data["stages"][0]["name"] == "correctness" and data["tests"][0]["stage"] == "correctness"


def test_grade_cli_json_statuses_for_a_broken_file(tmp_path):
    path = tmp_path / "spatial.py"
    path.write_bytes(mutant_source("conv_flipped_kernel"))
    completed = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(path), "--json", "--stages",
                                "correctness", "--sandbox", "unsafe-subprocess"], capture_output=True, text=True,
                               cwd=PROJECT_ROOT, timeout=300)
    data = json.loads(completed.stdout)
    assert completed.returncode == 1
    assert {test["status"] for test in data["tests"]} == {"passed", "failed"}
    assert data["execution_time"] > 0 and "Each failed check below" in data["output"]
    flipped = [test for test in data["tests"] if test["name"].startswith("conv2d.forward") and test["score"] == 0
               and test["visibility"] == "visible"]
    assert flipped and all(test["status"] == "failed" and "flipped" in test["output"] for test in flipped)
