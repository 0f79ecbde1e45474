"""Grading stages, one module each: `correctness` (the checks) and `training` (the `cifar10` stage), and what a
stage receives and returns (below).

A stage is a module with `run_stage(StageContext) -> StageOutput` and `max_score(spec)`; grader/pipeline.py owns
the registry that names them, the gating between them and the merging of their results.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from grader.result import StageResult, TestResult
from grader.settings import Settings
from grader.spec import Spec
from sandbox.runner import SandboxRunner

EventCallback = Callable[[dict[str, Any]], None]


@dataclass
class StageContext:
    """Everything a stage may use.

    Fields:
        source: the submission's bytes as uploaded.
        spec: the assignment spec; `spec.stages[name]` is the stage's own section.
        runner: the sandbox backend every run of student code must go through.
        settings: the service settings (limits, paths).
        on_event: gets progress events as plain dicts ({"type": "progress", "stage": .., ...}); may be None.
        previous: outputs of the stages that already ran, by name.
    """

    source: bytes
    spec: Spec
    runner: SandboxRunner
    settings: Settings
    on_event: EventCallback | None = None
    previous: dict[str, "StageOutput"] = field(default_factory=dict)

    def emit(self, event: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(event)


@dataclass
class StageOutput:
    """A stage's result, its scored tests, and top-level JSON fields (e.g. `{"cifar10": {...}}`)."""

    result: StageResult
    tests: list[TestResult] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def all_passed(self) -> bool:
        return self.result.status == "graded" and all(test.status == "passed" for test in self.tests)
