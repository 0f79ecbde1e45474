"""An assignment's self-test: the instructor's reference solution must earn every correctness point.

Run before an assignment is published (and by `grader kit self-test`): the solution goes through the same
pipeline as a student's file, with the assignment's spec and kit, so a spec whose checks cannot be passed, a
kit that breaks the harness, or a broken reference solution is caught before students see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grader.pipeline import grade_submission
from grader.spec import Spec

MAX_LISTED = 20  # failing checks listed in the message


@dataclass(frozen=True)
class SelfTest:
    """The outcome. Fields: passed; score and max_score of the correctness stage; failing: (check, feedback) of
    every check that did not pass; message: one paragraph for the instructor."""

    passed: bool
    score: float
    max_score: float
    failing: tuple[tuple[str, str], ...] = field(default=())
    message: str = ""

    def to_json(self) -> dict:
        return {"passed": self.passed, "score": self.score, "max_score": self.max_score,
                "failing": [{"check": name, "output": output} for name, output in self.failing],
                "message": self.message}


def run_self_test(spec: Spec, reference_solution: bytes, *, runner=None, settings=None) -> SelfTest:
    """Grade the reference solution's correctness stage under `spec`; passed only with every point."""
    result = grade_submission(reference_solution, spec=spec, stages=["correctness"], runner=runner,
                              settings=settings)
    stage = result.stages[0]
    failing = tuple((test.name, test.output) for test in result.tests if test.status != "passed")
    passed = stage.status == "graded" and not failing and result.score >= result.max_score - 1e-9
    if passed:
        message = f"Self-test passed: the reference solution earns {result.score:g} of {result.max_score:g}."
    else:
        names = ", ".join(name for name, _ in failing[:MAX_LISTED])
        more = f" and {len(failing) - MAX_LISTED} more" if len(failing) > MAX_LISTED else ""
        message = (f"Self-test failed: the reference solution earns {result.score:g} of {result.max_score:g} "
                   f"({stage.message}). Failing checks: {names or 'none'}{more}. Fix the solution, the spec or "
                   "the kit before publishing.")
    return SelfTest(passed, result.score, result.max_score, failing, message)
