"""The correctness stage's live progress and messages name the running case; for a hidden case they also carry
the neutral label a student sees instead (grader/hidden_checks.py). Real stage on the UNSAFE subprocess runner
(tests/grader/conftest.py); the default spec hides `conv2d.*.k5_stride2_pad1_odd`."""

from __future__ import annotations

from grader import hidden_checks
from grader.pipeline import grade_submission
from tests.factories import good_source

HIDDEN_RUN = "conv2d.k5_stride2_pad1_odd"
HIDDEN_DESCRIPTION = "Conv2D(3, 3, kernel_size=5, stride=2, padding=1) on x of shape (2, 3, 11, 9) float32"
# The process ends (os._exit) inside the hidden case: the stage message then says which case was running.
EXITS_IN_HIDDEN_CASE = good_source().decode() + '''

class Conv2D(Conv2D):
    def forward(self, x):
        if tuple(x.data.shape) == (2, 3, 11, 9):
            import os
            os._exit(3)
        return super().forward(x)
'''


def _graded(runner, spec):
    events: list[dict] = []
    result = grade_submission(EXITS_IN_HIDDEN_CASE.encode(), spec=spec, stages=["correctness"], runner=runner,
                              on_event=events.append)
    return result, [event for event in events if event.get("type") == "progress"]


def test_hidden_case_is_named_for_staff_and_labelled_for_students(runner, spec):
    result, progress = _graded(runner, spec)
    hidden = [event for event in progress if event.get("running") == HIDDEN_RUN]
    assert hidden, [event.get("running") for event in progress]
    assert hidden[-1][hidden_checks.RUNNING_CASE]["visibility"] == "hidden"
    before_due = [hidden_checks.student_event(event, False) for event in progress]
    after_due = [hidden_checks.student_event(event, True) for event in progress]
    for shown in before_due + after_due:
        assert "k5_stride2" not in str(shown) and "kernel_size=5" not in str(shown)
    assert before_due[progress.index(hidden[-1])]["running"] == "hidden check 1"
    visible = [event for event in progress if hidden_checks.RUNNING_CASE not in event]
    assert visible and all(hidden_checks.student_event(event, False) == event for event in visible)

    stored = result.to_json()
    assert HIDDEN_DESCRIPTION in stored["message"], stored["message"]  # kept in full for staff
    for released in (False, True):
        shown = hidden_checks.student_result(stored, released)
        assert HIDDEN_DESCRIPTION not in str(shown) and "k5_stride2" not in str(shown)
        assert "while running a hidden check" in shown["message"]


def test_gradescope_output_shown_at_once_does_not_name_the_hidden_case(runner, spec):
    """Gradescope hides hidden tests itself, but shows the top-level output and visible tests straight away."""
    from grader.gradescope.results import results_json

    result, _ = _graded(runner, spec)
    data = results_json(result, execution_time=1.0)
    assert "while running a hidden check" in data["output"] and HIDDEN_DESCRIPTION not in data["output"]
    visible = [test for test in data["tests"] if test["visibility"] == "visible"]
    assert visible and not [test["name"] for test in visible if HIDDEN_DESCRIPTION in test["output"]]
    assert any(HIDDEN_DESCRIPTION in test["output"] for test in data["tests"] if test["visibility"] == "hidden")
