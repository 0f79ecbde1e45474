"""Reading a file's course version from its source, the spec's architecture and flatten keys, and the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.course_versions import CURRENT, MODULE_TEXT, OLDER, mismatch_note, recognise
from grader.spec import SpecError, load_spec, parse_spec
from reference.architectures import CURRENT_COURSE
from reference.architectures import MODULE_TEXT as MODULE_TEXT_NETWORK

ROOT = Path(__file__).resolve().parents[2]
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"
DEFAULT_TEXT = (ROOT / "grader" / "specs" / "default.toml").read_text()


@pytest.mark.parametrize("fixture, version, package_copy", [
    ("course_package_copy", CURRENT, True),
    ("course_current_solution", CURRENT, False),
    ("course_reshape_flatten", MODULE_TEXT, False),
    ("good_vectorized", MODULE_TEXT, False),
    ("course_old_single_channel", OLDER, False),
    ("course_old_single_channel_kit_only", OLDER, False),
])
def test_fixtures_are_recognised(fixture, version, package_copy):
    style = recognise((SUBMISSIONS / f"{fixture}.py").read_bytes())
    assert (style.version, style.package_copy) == (version, package_copy)


def test_older_signs_and_weak_signs():
    dev = recognise(b"from tensor_dev import Tensor\nfrom tinytorch.core.layers import Module\n")
    assert dev.version == OLDER and "development module tensor_dev" in dev.evidence[0]
    assert any("Module (now Layer)" in item for item in dev.evidence)
    # Module and Dense alone are names the kit still has: not enough to call the file old.
    assert recognise(b"from tinytorch.core.layers import Module, Dense\n").version != OLDER
    assert recognise(b"def broken(:\n").version == ""


def test_mismatch_note_names_the_old_version_and_the_expected_api():
    style = recognise((SUBMISSIONS / "course_old_single_channel_kit_only.py").read_bytes())
    note = mismatch_note(style, "current_course", CURRENT_COURSE, "none")
    assert "older version of the course" in note and "Conv2d(in_channels, out_channels, kernel_size" in note
    assert "any flatten step inside SimpleCNN" in note and "Linear(2048, 10)" in note
    assert mismatch_note(recognise(b"class Conv2D:\n    def __init__(self, in_channels, out_channels): pass\n"),
                         "module_text", MODULE_TEXT_NETWORK, "class") == ""


def test_spec_architecture_and_flatten():
    spec = load_spec(ROOT / "grader" / "specs" / "current_course.toml")
    assert spec.architecture is CURRENT_COURSE and spec.course == "current_course"
    assert spec.correctness.flatten == "none" and spec.catalogue_options.flatten == "none"
    layers = 'layers = ["Conv2d(3, 8, 3)", "ReLU", "MaxPool2d(2)", "Flatten", "Linear(1800, 10)"]'
    custom = parse_spec(DEFAULT_TEXT.replace('name = "module_text"', layers))
    assert list(custom.architecture.parameter_shapes().values()) == [(8, 3, 3, 3), (8,), (1800, 10), (10,)]
    assert custom.course == "module_text"


@pytest.mark.parametrize("old, new, message", [
    ('name = "module_text"', 'name = "resnet"', "unknown architecture 'resnet'"),
    ('name = "module_text"', 'layers = ["Conv2d(3, 8, 3)", "Flatten", "Linear(10, 10)"]', "in_features"),
    ('name = "module_text"', 'size = 3', "unknown key"),
    ('flatten = "class"', 'flatten = "layer"', "flatten must be one of class, function, none"),
    ('pass_mark = 0.75', 'pass_mark = 0.75\ncourse = "2019"', "assignment.course must be one of"),
])
def test_spec_errors_name_the_key(old, new, message):
    assert old in DEFAULT_TEXT
    with pytest.raises(SpecError, match=message):
        parse_spec(DEFAULT_TEXT.replace(old, new))


def test_flatten_function_is_graded_under_a_function_spec(runner):
    from grader.pipeline import grade_submission
    from grader.stages.correctness import max_score

    spec = parse_spec(DEFAULT_TEXT.replace('flatten = "class"', 'flatten = "function"'))
    source = (SUBMISSIONS / "course_reshape_flatten.py").read_text() + (
        "\n\ndef flatten(x):\n    return x.reshape(x.shape[0], -1)\n")
    result = grade_submission(source.encode(), spec=spec, stages=["correctness"], runner=runner)
    assert [test.name for test in result.tests if test.status != "passed"] == []
    assert result.score == pytest.approx(max_score(spec))
    assert any(test.output.startswith("flatten(x) on x of shape") for test in result.tests)


def test_main_block_never_runs_and_other_top_level_errors_still_stop_the_import(runner):
    from grader.pipeline import grade_submission

    spec = load_spec()
    good = (SUBMISSIONS / "good_vectorized.py").read_text()
    guarded = grade_submission((good + '\nif __name__ == "__main__":\n    import sys\n    sys.exit(3)\n').encode(),
                               spec=spec, stages=["correctness"], runner=runner)
    assert guarded.stages[0].status == "graded" and "runs tests at import" not in guarded.stages[0].message
    broken = grade_submission((good + "\nLIMIT = undefined_name + 1\n").encode(), spec=spec, stages=["correctness"],
                              runner=runner)
    assert broken.stages[0].status == "error" and "NameError" in broken.stages[0].message


def test_failing_test_block_at_the_top_level_is_reported_and_the_file_still_graded(runner, full_score):
    from grader.pipeline import grade_submission

    good = (SUBMISSIONS / "good_vectorized.py").read_text()
    block = "\ntry:\n    print('testing')\n    layer = Conv2D(1, 1, kernel_size=3)\n    layer(None)\nexcept ValueError:\n    pass\n"
    marker = "class MaxPool2DFunction"
    assert marker in good
    result = grade_submission(good.replace(marker, block + "\n\n" + marker, 1).encode(), spec=load_spec(),
                              stages=["correctness"], runner=runner)
    assert result.score == pytest.approx(full_score)
    assert "runs tests at import and one failed" in result.stages[0].message
    assert "`try:`): AttributeError" in result.stages[0].message
