"""Assignment specs (TOML): points and visibility per check, stages in order, pass mark, limit overrides.

A spec looks like grader/specs/default.toml. `[stages.<name>]` sections are kept in file order; the pipeline
runs them in that order. The correctness section is typed here (`Spec.correctness`); every other stage reads
its own section from `Spec.stages[name]` (a plain dict), e.g. `spec.stages["cifar10"]["epochs"]`.

`[architecture]` names the SimpleCNN the assignment grades (`name = "module_text"` by default, or
`"current_course"`, or `layers = [...]`, see reference/architectures.py); the correctness checks and the CIFAR-10
stage both follow it. `[assignment] course` says which course version the students follow, for the feedback
when a file looks written for another one.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from grader.checks import FLATTEN_MODES, CatalogueOptions
from grader.kits import KIT_REFERENCE
from reference.architectures import MODULE_TEXT, Architecture, ArchitectureError, resolve
from sandbox.runner import SandboxLimits

DEFAULT_SPEC_PATH = Path(__file__).resolve().parent / "specs" / "default.toml"
VISIBILITIES = ("visible", "hidden", "after_due_date")
LIMIT_FIELDS = {f.name for f in fields(SandboxLimits)}
COMPONENTS = ("conv2d", "maxpool2d", "avgpool2d", "flatten", "simplecnn")
COURSES = ("module_text", "current_course")


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
        flatten: how the flatten step is graded: "class" (a Flatten class), "function" (a flatten(x) function)
            or "none" (not graded).
    """

    seed: int = 0
    points: tuple[tuple[str, float], ...] = (("*", 1.0),)
    visibility: tuple[tuple[str, str], ...] = ()
    max_score: float | None = None
    limits: Mapping[str, float] = field(default_factory=dict)
    case_seconds: tuple[tuple[str, float], ...] = ()
    flatten: str = "class"

    def points_for(self, check_name: str) -> float:
        return _first_match(self.points, check_name, 0.0)

    def visibility_for(self, check_name: str) -> str:
        return _first_match(self.visibility, check_name, "visible")


@lru_cache(maxsize=4096)
def _first_match(rules: tuple[tuple[str, Any], ...], name: str, default: Any) -> Any:
    """The value of the first (pattern, value) rule whose glob matches `name`, else `default` (cached: every grade
    asks for every check, a few times, with the same rules)."""
    for pattern, value in rules:
        if fnmatch.fnmatchcase(name, pattern):
            return value
    return default


@dataclass(frozen=True)
class Spec:
    """One assignment. `stages` holds every `[stages.*]` section in file order (raw dicts)."""

    name: str
    title: str
    pass_mark: float  # fraction of the total score a submission needs to pass (badges, CI exit code)
    stages: dict[str, dict[str, Any]]
    correctness: CorrectnessSpec
    source: str = ""
    architecture: Architecture = MODULE_TEXT
    course: str = "module_text"  # the course version the assignment follows (feedback on other versions' files)
    kit: str | None = None  # "sha256:..." of an uploaded course kit (grader/kits.py); None: the built-in kit

    @property
    def stage_names(self) -> list[str]:
        return list(self.stages)

    @property
    def catalogue_options(self) -> CatalogueOptions:
        """Which checks this assignment has (architecture of SimpleCNN, kind of flatten step)."""
        return CatalogueOptions(architecture=self.architecture, flatten=self.correctness.flatten)


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
    architecture = _architecture(_table(data, "architecture", source), source)
    course = str(assignment.get("course", architecture.name if architecture.name in COURSES else "module_text"))
    if course not in COURSES:
        raise SpecError(f"{source}: assignment.course must be one of {', '.join(COURSES)}, got {course!r}")
    kit = assignment.get("kit")
    if kit is not None and (not isinstance(kit, str) or KIT_REFERENCE.match(kit) is None):
        raise SpecError(f"{source}: assignment.kit must be the reference an upload returned, "
                        f"sha256:<64 hex digits>; got {kit!r}")
    return Spec(name=str(assignment.get("name", "assignment")), title=str(assignment.get("title", "")),
                pass_mark=pass_mark, stages={name: dict(section) for name, section in stages.items()},
                correctness=_correctness(stages["correctness"], source), source=source,
                architecture=architecture, course=course, kit=kit)


def _architecture(section: dict, source: str) -> Architecture:
    unknown = set(section) - {"name", "layers"}
    if unknown:
        raise SpecError(f"{source}: [architecture] has unknown key(s) {', '.join(sorted(unknown))}; "
                        "give `name` (module_text, current_course) or `layers = [...]`")
    try:
        return resolve(section.get("name"), section.get("layers"))
    except ArchitectureError as error:
        raise SpecError(f"{source}: [architecture]: {error}") from error


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
    flatten = section.get("flatten", "class")
    if flatten not in FLATTEN_MODES:
        raise SpecError(f"{where}.flatten must be one of {', '.join(FLATTEN_MODES)}, got {flatten!r}")
    return CorrectnessSpec(seed=int(section.get("seed", 0)), points=tuple(points) or (("*", 1.0),),
                           visibility=tuple(visibility), max_score=None if max_score is None else float(max_score),
                           limits=dict(limits), case_seconds=tuple(case_seconds), flatten=flatten)
