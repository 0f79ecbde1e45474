"""Result objects of a grading run; their JSON follows Gradescope's results.json where the two overlap."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RunStatus = Literal["graded", "error", "timeout"]
TestStatus = Literal["passed", "failed", "error", "timeout"]
Visibility = Literal["visible", "hidden", "after_due_date"]


@dataclass
class TestResult:
    """Outcome of one check: `name` is `<component>.<aspect>.<case>`, `output` is feedback for the student."""

    name: str
    stage: str
    score: float
    max_score: float
    status: TestStatus
    visibility: Visibility = "visible"
    output: str = ""


@dataclass
class StageResult:
    """Outcome of one stage (`correctness`, `cifar10`); `details` holds stage-specific data such as the curve."""

    name: str
    score: float
    max_score: float
    status: Literal["graded", "error", "timeout", "skipped"]
    duration_s: float
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class GradingResult:
    """The whole result of grading one file; `to_json()` is what `grader grade --json` prints."""

    score: float
    max_score: float
    status: RunStatus
    stages: list[StageResult] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)
    grader_version: str = ""
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, reason: str, *, max_score: float, grader_version: str, status: RunStatus = "error") -> "GradingResult":
        """A result with score 0 and a message written for the student."""
        return cls(score=0.0, max_score=max_score, status=status, grader_version=grader_version, message=reason)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        extra = data.pop("extra")
        data.update(extra)
        return data
