"""Files written the way the public course's students write them grade as their code deserves.

Each fixture (tests/fixtures/submissions/course_*.py, written for this project in one real style) has the score
it must get under a spec, as points lost per check group; the README's "Course versions" table states the same.
Every fixture runs through the real Docker sandbox, and through the subprocess runner for `make test-fast`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.pipeline import grade_submission
from grader.settings import get_settings
from grader.spec import load_spec, parse_spec
from grader.stages.correctness import max_score
from sandbox.select import select_runner

ROOT = Path(__file__).resolve().parents[3]
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"
SPECS = ROOT / "grader" / "specs"


def _spec(name: str):
    if name == "default_flatten_none":
        text = (SPECS / "default.toml").read_text().replace('flatten = "class"', 'flatten = "none"')
        assert 'flatten = "none"' in text
        return parse_spec(text, source="default.toml with flatten = none")
    return load_spec(SPECS / f"{name}.toml")


# (fixture, spec) -> points lost per "<component>.<aspect>" group (fraction of that group's points lost).
ALL_LOST = {group: 1.0 for group in ("conv2d.forward", "conv2d.backward", "conv2d.api", "maxpool2d.forward",
                                     "maxpool2d.backward", "maxpool2d.api", "avgpool2d.forward", "avgpool2d.backward",
                                     "avgpool2d.api", "flatten.forward", "flatten.backward", "simplecnn.forward",
                                     "simplecnn.backward", "simplecnn.api")}
EXPECTED = {
    ("course_package_copy", "current_course"): {},
    ("course_package_copy", "default"): {"flatten.forward": 1.0, "flatten.backward": 1.0, "simplecnn.forward": 1.0,
                                         "simplecnn.backward": 1.0, "simplecnn.api": 1.0},
    ("course_current_solution", "current_course"): {"avgpool2d.backward": 1.0, "simplecnn.forward": 1.0,
                                                    "simplecnn.backward": 1.0, "simplecnn.api": 1.0},
    ("course_reshape_flatten", "default"): {"flatten.forward": 1.0, "flatten.backward": 1.0},
    ("course_reshape_flatten", "default_flatten_none"): {},
    ("course_tests_at_import", "default"): {},
    ("course_forward_only", "default"): {"conv2d.backward": 1.0, "maxpool2d.backward": 1.0,
                                         "avgpool2d.backward": 1.0, "flatten.backward": 1.0,
                                         # fc2's gradients are right: its input is a leaf built from NumPy
                                         "simplecnn.backward": 7 / 9},
    ("course_old_single_channel", "default"): ALL_LOST,
    ("course_old_single_channel_kit_only", "default"): ALL_LOST,
}
# Phrases the feedback must contain.
MESSAGES = {
    "course_tests_at_import": ["Your file runs tests at import and one failed (line 89: `test_unit_conv2d()`)",
                               "AssertionError: expected (1, 8, 8, 8), got (1, 8, 6, 6)"],
    "course_old_single_channel": ["No module named 'tinytorch.core.cnn'", "older version of the course",
                                  "its Conv2D(kernel_size) is the single-channel layer",
                                  "This assignment expects multi-channel layers Conv2D(in_channels, out_channels"],
    "course_old_single_channel_kit_only": ["unexpected keyword argument 'in_channels'", "older version of the course",
                                           "MaxPool2D(pool_size) uses the old argument name"],
    "course_forward_only": ["x.grad is None after out.backward(G): the gradient never reached the input"],
    "course_current_solution": ["Missing: fc.weight, fc.bias", "x.grad is None after out.backward(G)"],
}


def _group_points(spec, result) -> tuple[dict[str, float], dict[str, float]]:
    earned: dict[str, float] = {}
    available: dict[str, float] = {}
    for test in result.tests:
        group = ".".join(test.name.split(".")[:2])
        earned[group] = earned.get(group, 0.0) + test.score
        available[group] = available.get(group, 0.0) + test.max_score
    return earned, available


def _check(fixture: str, spec_name: str, result, spec) -> None:
    earned, available = _group_points(spec, result)
    lost = EXPECTED[(fixture, spec_name)]
    for group, points in available.items():
        expected = points * (1.0 - lost.get(group, 0.0))
        assert earned[group] == pytest.approx(expected, abs=1e-6), f"{fixture} under {spec_name}: {group}"
    expected_total = max_score(spec) - sum(available.get(group, 0.0) * share for group, share in lost.items())
    assert result.score == pytest.approx(expected_total, abs=1e-6)
    feedback = "\n".join([stage.message for stage in result.stages] + [test.output for test in result.tests])
    for phrase in MESSAGES.get(fixture, []):
        assert phrase in feedback, f"{fixture}: feedback lacks {phrase!r}"
    if fixture == "course_reshape_flatten":
        assert "fix the failing checks of Flatten" not in feedback


CASES = sorted(EXPECTED)


@pytest.mark.parametrize(("fixture", "spec_name"), CASES)
def test_course_style_grades_as_it_deserves(runner, fixture, spec_name):
    spec = _spec(spec_name)
    result = grade_submission((SUBMISSIONS / f"{fixture}.py").read_bytes(), spec=spec, stages=["correctness"],
                              runner=runner)
    _check(fixture, spec_name, result, spec)


@pytest.fixture(scope="module")
def docker_runner():
    return select_runner(get_settings(), "docker")


@pytest.mark.docker
@pytest.mark.parametrize(("fixture", "spec_name"), CASES)
def test_course_style_grades_the_same_in_docker(docker_runner, fixture, spec_name):
    spec = _spec(spec_name)
    result = grade_submission((SUBMISSIONS / f"{fixture}.py").read_bytes(), spec=spec, stages=["correctness"],
                              runner=docker_runner)
    assert result.stages[0].details.get("backend") == docker_runner.name
    _check(fixture, spec_name, result, spec)


def test_every_course_fixture_has_an_expected_score():
    fixtures = {path.stem for path in SUBMISSIONS.glob("course_*.py")}
    assert fixtures == {fixture for fixture, _ in EXPECTED}
