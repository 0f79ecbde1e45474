"""Assignment specs (TOML): points and visibility per check, stages in order, pass mark, limit overrides.

A spec looks like grader/specs/default.toml. `[stages.<name>]` sections are kept in file order; the pipeline
runs them in that order. The correctness section is typed here (`Spec.correctness`); every other stage reads
its own section from `Spec.stages[name]` (a plain dict), e.g. `spec.stages["cifar10"]["epochs"]`.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from sandbox.runner import SandboxLimits

DEFAULT_SPEC_PATH = Path(__file__).resolve().parent / "specs" / "default.toml"
VISIBILITIES = ("visible", "hidden", "after_due_date")
LIMIT_FIELDS = {f.name for f in fields(SandboxLimits)}
COMPONENTS = ("conv2d", "maxpool2d", "avgpool2d", "flatten", "simplecnn")


class SpecError(ValueError):
    """The spec file is malformed; the message says where."""


@dataclass(frozen=True)
class CorrectnessSpec:
    """The correctness stage's section.

    Fields:
        seed: inputs of every check are generated from it (change it per term so answers cannot be shared).
        points: (glob pattern, points) pairs; a check takes the first pattern that matches its name.
        visibility: (glob pattern, visibility) pairs, first match wins; unmatched checks are visible.
        max_score: if set, points are scaled so that the stage is worth exactly this.
        limits: overrides of SandboxLimits fields for the correctness job.
        case_seconds: (component, seconds) overrides of the per-case time limit inside the sandbox.
    """

    seed: int = 0
    points: tuple[tuple[str, float], ...] = (("*", 1.0),)
    visibility: tuple[tuple[str, str], ...] = ()
    max_score: float | None = None
    limits: Mapping[str, float] = field(default_factory=dict)
    case_seconds: tuple[tuple[str, float], ...] = ()

    def points_for(self, check_name: str) -> float:
        for pattern, points in self.points:
            if fnmatch.fnmatchcase(check_name, pattern):
                return points
        return 0.0

    def visibility_for(self, check_name: str) -> str:
        for pattern, visibility in self.visibility:
            if fnmatch.fnmatchcase(check_name, pattern):
                return visibility
        return "visible"


@dataclass(frozen=True)
class Spec:
    """One assignment. `stages` holds every `[stages.*]` section in file order (raw dicts)."""

    name: str
    title: str
    pass_mark: float  # fraction of the total score a submission needs to pass (badges, CI exit code)
    stages: dict[str, dict[str, Any]]
    correctness: CorrectnessSpec
    source: str = ""

    @property
    def stage_names(self) -> list[str]:
        return list(self.stages)


def load_spec(path: str | Path | None = None) -> Spec:
    """Read and validate a spec file (the default spec when `path` is None)."""
    path = Path(path) if path is not None else DEFAULT_SPEC_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read spec {path}: {error}") from error
    return parse_spec(text, source=str(path))


def parse_spec(text: str, *, source: str = "<string>") -> Spec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{source}: {error}") from error
    assignment = _table(data, "assignment", source)
    stages = _table(data, "stages", source)
    if "correctness" not in stages:
        raise SpecError(f"{source}: [stages.correctness] is required")
    for name, section in stages.items():
        if not isinstance(section, dict):
            raise SpecError(f"{source}: stages.{name} must be a table")
    pass_mark = float(assignment.get("pass_mark", 0.5))
    if not 0.0 <= pass_mark <= 1.0:
        raise SpecError(f"{source}: assignment.pass_mark must be between 0 and 1, got {pass_mark}")
    return Spec(name=str(assignment.get("name", "assignment")), title=str(assignment.get("title", "")),
                pass_mark=pass_mark, stages={name: dict(section) for name, section in stages.items()},
                correctness=_correctness(stages["correctness"], source), source=source)


def _table(data: dict, key: str, source: str) -> dict:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise SpecError(f"{source}: [{key}] must be a table")
    return value


def _correctness(section: dict, source: str) -> CorrectnessSpec:
    where = f"{source}: stages.correctness"
    points = []
    for pattern, value in _table(section, "points", where).items():
        if not isinstance(value, (int, float)) or value < 0:
            raise SpecError(f"{where}.points.{pattern!r} must be a number >= 0")
        points.append((pattern, float(value)))
    visibility = []
    for pattern, value in _table(section, "visibility", where).items():
        if value not in VISIBILITIES:
            raise SpecError(f"{where}.visibility.{pattern!r} must be one of {', '.join(VISIBILITIES)}")
        visibility.append((pattern, value))
    limits = _table(section, "limits", where)
    unknown = set(limits) - LIMIT_FIELDS
    if unknown:
        raise SpecError(f"{where}.limits: unknown field(s) {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(LIMIT_FIELDS))}")
    case_seconds = []
    for component, value in _table(section, "case_seconds", where).items():
        if component not in COMPONENTS or not isinstance(value, (int, float)) or value <= 0:
            raise SpecError(f"{where}.case_seconds: expected positive seconds for components among "
                            f"{', '.join(COMPONENTS)}, got {component} = {value!r}")
        case_seconds.append((component, float(value)))
    max_score = section.get("max_score")
    return CorrectnessSpec(seed=int(section.get("seed", 0)), points=tuple(points) or (("*", 1.0),),
                           visibility=tuple(visibility), max_score=None if max_score is None else float(max_score),
                           limits=dict(limits), case_seconds=tuple(case_seconds))
