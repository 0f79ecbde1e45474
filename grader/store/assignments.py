"""Creating assignments from a grading spec: points per stage, full marks and pass mark come from the spec."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from grader.settings import PROJECT_ROOT
from grader.store.runs import spec_version_of

DEFAULT_SPEC_PATH = PROJECT_ROOT / "grader" / "specs" / "default.toml"
KNOWN_STAGES = ("correctness", "cifar10")


class SpecError(ValueError):
    """The spec text is not valid TOML or names no stage we can run."""


@dataclass(frozen=True)
class SpecSummary:
    parsed: dict[str, Any]
    version: str
    stage_weights: dict[str, float]
    max_score: float
    pass_mark: float
    training_cpu_minutes_per_day: float | None


def default_spec_toml() -> str:
    return DEFAULT_SPEC_PATH.read_text() if DEFAULT_SPEC_PATH.exists() else '[stages.correctness]\npoints = 100\n'


def _stage_points(section: Any) -> float | None:
    if not isinstance(section, dict):
        return None
    for key in ("points", "max_score", "weight"):
        if isinstance(section.get(key), (int, float)):
            return float(section[key])
    return None


def summarize_spec(spec_toml: str, stages: list[str] | None = None) -> SpecSummary:
    """Read the points of each stage (`[stages.<name>] points|max_score|weight`) and the pass mark."""
    try:
        parsed = tomllib.loads(spec_toml)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"the spec is not valid TOML: {error}") from error
    sections = parsed.get("stages", {}) if isinstance(parsed.get("stages"), dict) else {}
    weights = {name: _stage_points(sections.get(name)) for name in KNOWN_STAGES if name in sections}
    weights = {name: points for name, points in weights.items() if points is not None}
    if not weights:
        weights = {"correctness": float(parsed.get("max_score", 100.0))}
    if stages is not None:
        unknown = [name for name in stages if name not in weights]
        if unknown:
            raise SpecError(f"the spec has no stage {unknown[0]!r}; it has {', '.join(weights)}")
        weights = {name: weights[name] for name in weights if name in stages}
    max_score = sum(weights.values())
    pass_mark = parsed.get("pass_mark", parsed.get("grading", {}).get("pass_mark") if isinstance(
        parsed.get("grading"), dict) else None)
    limits = parsed.get("limits", {}) if isinstance(parsed.get("limits"), dict) else {}
    ration = limits.get("training_cpu_minutes_per_day")
    return SpecSummary(parsed=parsed, version=spec_version_of(spec_toml), stage_weights=weights,
                       max_score=max_score,
                       pass_mark=min(float(pass_mark), max_score) if pass_mark is not None else max_score,
                       training_cpu_minutes_per_day=float(ration) if ration is not None else None)
