"""Correct files get every correctness point; the feedback of a passing run is clean."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.mutants import mutant_source

SUBMISSIONS = Path(__file__).resolve().parents[2] / "fixtures" / "submissions"


FAST_CORRECT_FILES = sorted(path.name for path in SUBMISSIONS.glob("good_*.py") if path.name != "good_loop.py")


def test_fixtures_present():
    assert "good_vectorized.py" in FAST_CORRECT_FILES
    assert (SUBMISSIONS / "good_loop.py").exists()


@pytest.mark.parametrize("name", FAST_CORRECT_FILES)
def test_correct_vectorized_files_get_every_point(grade, full_score, name):
    path = SUBMISSIONS / name
    result = grade(path.read_bytes())
    failing = [(test.name, test.output) for test in result.tests if test.status != "passed"]
    assert failing == []
    assert result.status == "graded"
    assert result.score == pytest.approx(full_score)
    assert result.max_score == pytest.approx(full_score)


@pytest.mark.slow
def test_loop_style_file_gets_every_point(grade, full_score):
    result = grade((SUBMISSIONS / "good_loop.py").read_bytes())
    assert [test.name for test in result.tests if test.status != "passed"] == []
    assert result.score == pytest.approx(full_score)


def test_catalogue_covers_the_issue(grade):
    result = grade((SUBMISSIONS / "good_vectorized.py").read_bytes())
    names = {test.name for test in result.tests}
    components = {name.split(".")[0] for name in names}
    aspects = {name.split(".")[1] for name in names}
    assert components == {"conv2d", "maxpool2d", "avgpool2d", "flatten", "simplecnn"}
    assert aspects == {"forward", "backward", "api"}
    from grader.checks import all_runs

    runs = all_runs()
    conv = [run for run in runs if run.component == "conv2d"]
    assert {run.weight_shape[2] for run in conv} >= {1, 2, 3, 5}
    assert {run.options["stride"] for run in conv} >= {1, 2, 3}
    assert {run.options["padding"] for run in conv} >= {0, 1, 2}
    assert any(not run.bias for run in conv)
    assert any(run.x_shape[0] > 1 and run.x_shape[1] > 1 and run.x_shape[2] != run.x_shape[3] for run in conv)
    assert {run.dtype for run in runs} == {"float32", "float64"}
    pools = [run for run in runs if run.component in ("maxpool2d", "avgpool2d")]
    assert any(run.options["stride"] < run.options["kernel_size"] for run in pools)
    assert any(run.input_kind == "ties" for run in pools)


def test_hidden_checks_keep_their_full_details_for_staff_and_release(grade):
    """Who sees them is decided when they are shown (api/presenters.py), so the details are stored in full."""
    result = grade(mutant_source("conv_flipped_kernel"))
    hidden = [test for test in result.tests if test.visibility == "hidden"]
    assert hidden, "the default spec hides some checks"
    failed = [test for test in hidden if test.status == "failed" and test.name.startswith("conv2d.forward.")]
    assert failed and all("Hidden check" not in test.output and "Conv2D(" in test.output for test in failed), [
        test.output for test in failed]


def test_simplecnn_with_other_attribute_names_is_found(grade, full_score):
    source = (SUBMISSIONS / "good_vectorized.py").read_text()
    for old, new in (("conv1", "features_a"), ("conv2", "features_b"), ("fc1", "dense_a"), ("fc2", "dense_b")):
        source = source.replace(f"self.{old}", f"self.{new}")
    result = grade(source)
    assert [test.name for test in result.tests if test.status != "passed"] == []
