"""What a student may see of hidden checks before release, decided in one place for every channel: the stored
result, the run's message, and the live progress events of the correctness stage.

The store keeps everything in full (staff see it always). A "hidden" check is withheld from students always, an
"after_due_date" one until the due date; a withheld check appears under a neutral numbered name ("hidden check 3"),
because case names spell out the case (shape, stride, padding). The stage records, beside each progress event and
the stage's message, which case was running and the neutral label to show instead; readers call `student_event`
and `student_result` with whether the assignment is released.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

RUNNING_CASE = "running_case"  # key of a progress event and of the correctness stage's details
WITHHELD_WHERE = "a hidden check"  # what a message says instead of a withheld case's description
WITHHELD = "Details of this check are shown after the due date."
HIDDEN_OUTPUT = {"passed": "Hidden check: passed.", "failed": "Hidden check: failed.",
                 "error": "Hidden check: your code raised an error.",
                 "timeout": "Hidden check: your code did not finish in time."}


def released(due_at: datetime | None) -> bool:
    """True once the due date has passed (no due date: never released)."""
    if due_at is None:
        return False
    due = due_at.replace(tzinfo=timezone.utc) if due_at.tzinfo is None else due_at  # naive: stored as UTC
    return datetime.now(timezone.utc) >= due


def withheld(visibility: str, is_released: bool) -> bool:
    return visibility == "hidden" or (visibility == "after_due_date" and not is_released)


def case_visibility(visibilities: Iterable[str]) -> str:
    """The visibility of a case (run) from its checks': the strictest, since the case name names all of them."""
    found = set(visibilities)
    return next((v for v in ("hidden", "after_due_date") if v in found), "visible")


def running_case(visibilities: Sequence[str], first: int, count: int, description: str = "") -> dict[str, Any] | None:
    """What a reader needs to hide the case whose checks are `visibilities[first:first + count]` (the checks of the
    whole stage in result order), or None when it is visible. `label` numbers it the way the student's result does
    before the due date, `label_released` after."""
    visibility = case_visibility(visibilities[first:first + count])
    if visibility == "visible":
        return None
    own = range(first, first + count)
    before = next(i for i in own if withheld(visibilities[i], False))
    case = {"visibility": visibility,
            "label": f"hidden check {sum(withheld(v, False) for v in visibilities[:before]) + 1}"}
    if visibility == "hidden":
        hidden_first = next(i for i in own if visibilities[i] == "hidden")
        case["label_released"] = f"hidden check {sum(v == 'hidden' for v in visibilities[:hidden_first]) + 1}"
    if description:
        case["text"] = description
    return case


def student_event(data: dict[str, Any], is_released: bool) -> dict[str, Any]:
    """A progress event as a student may see it: a withheld running case under its neutral label."""
    shown = {key: value for key, value in data.items() if key != RUNNING_CASE}
    case = data.get(RUNNING_CASE)
    if isinstance(case, dict) and withheld(str(case.get("visibility")), is_released):
        shown["running"] = str(case.get("label_released" if is_released else "label", "a hidden check"))
    return shown


def student_text(text: str, result: dict[str, Any] | None, is_released: bool) -> str:
    """`text` (a message of the run) without the description of a withheld case that was running."""
    for case in _running_cases(result):
        if withheld(str(case.get("visibility")), is_released) and case.get("text"):
            text = text.replace(str(case["text"]), WITHHELD_WHERE)
    return text


def _running_cases(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    stages = (result or {}).get("stages") or []
    return [stage["details"][RUNNING_CASE] for stage in stages if isinstance(stage, dict)
            and isinstance(stage.get("details"), dict) and isinstance(stage["details"].get(RUNNING_CASE), dict)]


def student_result(result: dict[str, Any] | None, is_released: bool) -> dict[str, Any] | None:
    """The result as a student may see it: withheld checks only by status under a numbered name, and no message
    naming a withheld case that was running when the stage ended."""
    if result is None:
        return None
    shown = copy.deepcopy(result)
    number = 0
    for test in shown.get("tests", []):
        visibility = str(test.get("visibility"))
        if withheld(visibility, is_released):
            number += 1
            test["name"] = f"hidden check {number}"
            test["output"] = (HIDDEN_OUTPUT.get(str(test.get("status")), "Hidden check.") if visibility == "hidden"
                              else WITHHELD)
        elif isinstance(test.get("output"), str):
            test["output"] = student_text(test["output"], result, is_released)
    if isinstance(shown.get("message"), str):
        shown["message"] = student_text(shown["message"], result, is_released)
    for stage in shown.get("stages") or []:
        if isinstance(stage, dict) and isinstance(stage.get("message"), str):
            stage["message"] = student_text(stage["message"], result, is_released)
        if isinstance(stage, dict) and isinstance(stage.get("details"), dict):
            stage["details"].pop(RUNNING_CASE, None)
    return shown
