"""SimpleCNN is built once per job: the parameters check reads what the one_image run recorded while constructing
(cases.json "construct_of"), and is scored and worded as when it built the network itself."""

from __future__ import annotations

import json

import pytest

from grader.checks import all_runs
from grader.correctness.result_file import parse_result
from grader.stages.correctness import job_inputs, prepared_runs
from sandbox.runner import SandboxJob
from tests.grader.conftest import SUBMISSIONS

GOOD = (SUBMISSIONS / "good_vectorized.py").read_text()
# A SimpleCNN that can be built only once: a second construction in the job fails the parameters check.
BUILT_ONCE = GOOD + '''

class SimpleCNN(SimpleCNN):
    built = 0

    def __init__(self):
        type(self).built += 1
        if type(self).built > 1:
            raise RuntimeError("SimpleCNN built a second time")
        super().__init__()
'''


def simplecnn_tests(result) -> dict:
    return {test.name: test for test in result.tests if test.name.startswith("simplecnn.")}


def test_parameters_run_names_the_one_image_run():
    runs = {run.id: run for run in all_runs()}
    parameters = runs["simplecnn.parameters"]
    source = runs[parameters.construct_of]
    assert not parameters.run_forward and source.run_forward
    assert (source.component, dict(source.init), source.call) == ("simplecnn", dict(parameters.init), parameters.call)
    assert list(runs).index(source.id) < list(runs).index(parameters.id)
    cases = {case["id"]: case for case in json.loads(job_inputs(prepared_runs(0))["cases.json"])["runs"]}
    assert cases["simplecnn.parameters"]["construct_of"] == "simplecnn.one_image"
    assert "construct_of" not in cases["simplecnn.one_image"]


def test_simplecnn_is_built_once_per_job(grade, full_score):
    result = grade(BUILT_ONCE)
    assert result.score == pytest.approx(full_score), [test.output for test in result.tests if test.score == 0]


def test_construct_error_is_reported_by_every_simplecnn_check(grade):
    tests = simplecnn_tests(grade(GOOD + "\n\nclass SimpleCNN(SimpleCNN):\n    def __init__(self):\n"
                                         "        raise RuntimeError('no network')\n"))
    assert set(tests) == {"simplecnn.forward.one_image", "simplecnn.backward.one_image", "simplecnn.api.parameters"}
    for test in tests.values():
        assert test.score == 0 and test.status == "error"
        assert "constructing the layer raised RuntimeError: no network" in test.output, test.output


def test_missing_layer_is_named_by_the_parameters_check(grade):
    source = GOOD.replace("        self.fc1 = Linear(64 * 8 * 8, 128)\n", "").replace("x = self.relu3(self.fc1(x))\n",
                                                                                      "x = self.relu3(x)\n")
    tests = simplecnn_tests(grade(source))
    api = tests["simplecnn.api.parameters"]
    assert api.score == 0 and api.status == "failed"
    assert "Missing: fc1.weight, fc1.bias" in api.output and "expected 8 in this order" in api.output, api.output


def test_forward_error_leaves_the_parameters_check_passing(grade):
    tests = simplecnn_tests(grade(GOOD + "\n\nclass SimpleCNN(SimpleCNN):\n    def forward(self, x):\n"
                                         "        raise ValueError('no forward')\n"))
    assert tests["simplecnn.api.parameters"].status == "passed"
    assert "ValueError: no forward" in tests["simplecnn.forward.one_image"].output


def test_a_construction_slower_than_the_parameters_limit_is_built_again(runner):
    """Built under one_image's limit, it would have timed out under the parameters run's own: it is rebuilt."""
    runs = prepared_runs(0)
    inputs = job_inputs(runs)
    cases = json.loads(inputs["cases.json"])
    for case in cases["runs"]:
        if case["id"] == "simplecnn.parameters":
            case["time_limit_s"] = 1e-9
    inputs["cases.json"] = json.dumps(cases).encode()
    outcome = runner.run(SandboxJob(harness="correctness", submission=BUILT_ONCE.encode(), inputs=inputs))
    entries = parse_result(outcome.result, {prepared.run.id: prepared for prepared in runs}).record["runs"]
    assert entries["simplecnn.one_image"]["status"] == "ok"
    # Reused, it would pass; rebuilt, the second construction fails (or its tiny time limit runs out first).
    assert entries["simplecnn.parameters"]["status"] in ("error", "timeout")
    assert "param_list" not in entries["simplecnn.parameters"]
