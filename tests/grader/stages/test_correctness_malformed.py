"""Malformed files get score 0 and a message a student can act on; grading never raises."""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD = (Path(__file__).resolve().parents[2] / "fixtures" / "submissions" / "good_vectorized.py").read_text()

CASES = {
    "empty": (b"", "empty"),
    "only_whitespace": (b"\n\n   \n", "empty"),
    "binary": (b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)), "not a text file"),
    "latin1": ("# caf\u00e9\nclass Conv2D: pass\n".encode("latin-1"), "not valid UTF-8"),
    "syntax_error": (b"import numpy as np\n\nclass Conv2D:\n    def forward(self x):\n        pass\n",
                     "syntax error on line 4"),
    "imports_torch": (b"import torch\n" + GOOD.encode(), "torch"),
    "raises_at_import": (b"import numpy as np\nraise RuntimeError('oops at import')\n", "oops at import"),
    "exits_at_import": (b"import sys\nsys.exit(0)\n", "sys.exit()"),
    "infinite_loop_at_import": (b"while True:\n    pass\n", "did not finish"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_file_scores_zero_with_message(grade, case):
    source, phrase = CASES[case]
    result = grade(source)
    assert result.score == 0.0
    assert result.max_score > 0
    assert result.status == "error"
    assert phrase in result.message
    assert all(test.score == 0.0 for test in result.tests)
    assert all(phrase in test.output for test in result.tests if test.visibility == "visible")


def test_syntax_error_message_shows_the_line(grade):
    result = grade(CASES["syntax_error"][0])
    assert "def forward(self x):" in result.message


def test_missing_classes_listed_and_other_components_still_graded(grade, spec):
    source = GOOD.replace("class AvgPool2D(Module):", "class AveragePooling(Module):")
    result = grade(source)
    avg = [test for test in result.tests if test.name.startswith("avgpool2d.")]
    assert avg and all(test.status == "failed" and test.score == 0 for test in avg)
    assert "AvgPool2D or AvgPool2d" in avg[0].output and "Expected classes" in avg[0].output
    others = [test for test in result.tests if not test.name.startswith("avgpool2d.")]
    assert all(test.status == "passed" for test in others)


def test_file_without_any_class(grade):
    result = grade(b"x = 1\n")
    assert result.score == 0.0
    assert all("Expected classes" in test.output for test in result.tests if test.visibility == "visible")


def test_too_large_file_is_refused_without_running(spec):
    from grader.pipeline import grade_submission

    class NoRunner:
        name = "none"

        def run(self, job, on_progress=None):
            raise AssertionError("must not run")

    result = grade_submission(b"#" * (2 * 1024 * 1024), spec=spec, stages=["correctness"], runner=NoRunner())
    assert result.score == 0.0 and result.status == "error" and "limit" in result.message
