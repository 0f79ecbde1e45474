"""Result objects of a grading run; their JSON follows Gradescope's results.json where the two overlap.

One GradingResult crosses every boundary on the trusted side: the flow (grader/pipeline.py) builds it, `grader
grade` prints it, and the store receives it and turns it into JSON only when it writes the run row
(`to_json()`), reading it back with `from_json()`.

Status precedence (the one rule, used by the CLI and the service alike): a run's status is the most severe
status among its stages, `error` > `timeout` > `graded`; skipped stages do not count. `error` ranks first because
it means part of the file could not be graded at all (it did not import, crashed, handed back nothing usable) and
is what the student must fix first; a `timeout` was graded as far as it got.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Iterable, Literal

RunStatus = Literal["graded", "error", "timeout"]
StageStatus = Literal["graded", "error", "timeout", "skipped"]
TestStatus = Literal["passed", "failed", "error", "timeout"]
Visibility = Literal["visible", "hidden", "after_due_date"]

STATUS_PRECEDENCE: tuple[RunStatus, ...] = ("error", "timeout", "graded")  # most severe first


def run_status(stage_statuses: Iterable[str]) -> RunStatus:
    """The run's status from its stages' statuses: the most severe one (STATUS_PRECEDENCE); skipped is ignored."""
    present = set(stage_statuses)
    return next((status for status in STATUS_PRECEDENCE if status in present), "graded")


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
    status: StageStatus
    duration_s: float
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class GradingResult:
    """The whole result of grading one file; `to_json()` is what `grader grade --json` prints.

    Fields:
        score, max_score: sums over the stages.
        status: `run_status` of the stages (a failure before any stage ran is "error" with no stages).
        stages, tests: in the order the stages ran.
        grader_version: the grader that produced it.
        message: one line per stage that has something to say ("<stage>: <message>"), else a failure reason.
        extra: top-level JSON fields stages add (e.g. `{"cifar10": {...}}`).
    """

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

    @classmethod
    def of_stages(cls, stages: list[StageResult], tests: list[TestResult], *, grader_version: str,
                  extra: dict[str, Any] | None = None) -> "GradingResult":
        """The result of these stages: scores add up, the status follows STATUS_PRECEDENCE."""
        messages = [f"{stage.name}: {stage.message}" for stage in stages if stage.message]
        return cls(score=round(sum(stage.score for stage in stages), 6),
                   max_score=round(sum(stage.max_score for stage in stages), 6),
                   status=run_status(stage.status for stage in stages), stages=list(stages), tests=list(tests),
                   grader_version=grader_version, message="\n".join(messages), extra=dict(extra or {}))

    def to_json(self) -> dict[str, Any]:
        data = asdict(replace(self, tests=[]))
        # A TestResult holds only strings and numbers, so a copy of its fields is what asdict would give; asdict's
        # recursion through the ~63 tests of a grade was most of the worker's time spent here.
        data["tests"] = [dict(vars(test)) for test in self.tests]
        extra = data.pop("extra")
        data.update(extra)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "GradingResult":
        """The inverse of `to_json()` (for results the store wrote); unknown top-level keys go to `extra`."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(score=float(data.get("score", 0.0)), max_score=float(data.get("max_score", 0.0)),
                   status=data.get("status", "error"),
                   stages=[_dataclass_from(StageResult, stage) for stage in data.get("stages", [])],
                   tests=[_dataclass_from(TestResult, test) for test in data.get("tests", [])],
                   grader_version=str(data.get("grader_version", "")), message=str(data.get("message", "")),
                   extra={key: value for key, value in data.items() if key not in known})


def _dataclass_from(kind: type, data: dict[str, Any]):
    names = {f.name for f in fields(kind)}
    return kind(**{key: value for key, value in data.items() if key in names})
