"""A GradingResult as Gradescope's results.json (https://gradescope-autograders.readthedocs.io/en/latest/specs/).

Gradescope knows two test statuses, "passed" and "failed"; a check that timed out or crashed is "failed" and says
which in its output. The top-level `output` is the text shown above the tests: the score per stage and each
stage's message. `execution_time` is in seconds.
"""

from __future__ import annotations

from typing import Any

from grader import hidden_checks
from grader.result import GradingResult, TestResult

GRADESCOPE_TEST_STATUSES = ("passed", "failed")
# What a check's own status adds in front of its feedback when Gradescope can only say "failed".
STATUS_NOTES = {"timeout": "This check ran out of time.", "error": "This check could not run."}


def test_status(test: TestResult) -> str:
    return "passed" if test.status == "passed" else "failed"


def test_output(test: TestResult) -> str:
    note = STATUS_NOTES.get(test.status, "")
    return f"{note}\n{test.output}".strip() if note else test.output


def summary(result: GradingResult, note: str = "") -> str:
    """Text for the whole submission: a note, the total, each stage with its score and message, and what to do."""
    lines = [note] if note else []
    lines.append(f"Score: {result.score:g} / {result.max_score:g}")
    for stage in result.stages:
        lines.append(f"{stage.name}: {stage.score:g} / {stage.max_score:g} ({stage.status})")
        if stage.message:
            lines.extend(f"  {line}" for line in stage.message.splitlines())
    if not result.stages and result.message:
        lines.append(result.message)  # nothing ran: the message says why
    if any(test.status != "passed" for test in result.tests):
        lines.append("Each failed check below says what differed and, where it can tell, why.")
    return "\n".join(lines)


def results_json(result: GradingResult, *, execution_time: float, note: str = "", stdout_visibility: str = "hidden",
                 visibility: str = "visible") -> dict[str, Any]:
    """Exactly the documented fields Gradescope reads: score, execution_time, output, visibility,
    stdout_visibility and tests[] (name, score, max_score, status, output, visibility).

    Gradescope withholds hidden and after-due-date tests itself, but shows the top-level output and visible tests at
    once: there a withheld case that was running when the job ended is called "a hidden check" (grader/hidden_checks.py).
    """
    stored = result.to_json()

    def shown(text: str, test_visibility: str = "visible") -> str:
        return text if test_visibility != "visible" else hidden_checks.student_text(text, stored, False)

    return {
        "score": round(result.score, 6),
        "execution_time": round(execution_time, 2),
        "output": shown(summary(result, note)),
        "visibility": visibility,
        "stdout_visibility": stdout_visibility,
        "tests": [{"name": test.name, "score": round(test.score, 6), "max_score": round(test.max_score, 6),
                   "status": test_status(test), "output": shown(test_output(test), test.visibility),
                   "visibility": test.visibility}
                  for test in result.tests],
    }


def grade_json(result: GradingResult, *, execution_time: float) -> dict[str, Any]:
    """What `grader grade --json` prints: the full result, with Gradescope's statuses, output and execution_time,
    in the same document as the stages and details other tools read."""
    data = result.to_json()
    for test, record in zip(result.tests, data["tests"]):
        record["status"] = test_status(test)
        record["output"] = test_output(test)
    data["output"] = summary(result)
    data["execution_time"] = round(execution_time, 2)
    return data
