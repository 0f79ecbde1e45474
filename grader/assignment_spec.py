"""What an assignment row takes from its grading spec: stages in order, points per stage, full marks, pass mark.

Database-free: the stage maxima come from the flow (grader/pipeline.py), so the store never needs it.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from typing import Any

from grader.pipeline import STAGES, stage_max
from grader.spec import DEFAULT_SPEC_PATH, SpecError, parse_spec

__all__ = ["SpecError", "SpecSummary", "default_spec_toml", "spec_version_of", "summarize_spec"]


@dataclass(frozen=True)
class SpecSummary:
    parsed: dict[str, Any]
    version: str
    stage_weights: dict[str, float]  # stage -> points, in the order the stages run
    max_score: float
    pass_mark: float  # in points
    training_cpu_minutes_per_day: float | None


def spec_version_of(spec_toml: str) -> str:
    return hashlib.sha256(spec_toml.encode()).hexdigest()[:16]


def default_spec_toml() -> str:
    return DEFAULT_SPEC_PATH.read_text(encoding="utf-8")


def summarize_spec(spec_toml: str, stages: list[str] | None = None) -> SpecSummary:
    """Validate the spec and read its stages (optionally only `stages`), points and pass mark (a fraction)."""
    spec = parse_spec(spec_toml, source="spec")
    weights: dict[str, float] = {}
    for name in spec.stage_names:
        if name not in STAGES or (stages is not None and name not in stages):
            continue
        weights[name] = stage_max(name, spec)
    missing = [name for name in stages or [] if name not in weights]
    if missing:
        raise SpecError(f"the spec has no stage {missing[0]!r}; it has {', '.join(spec.stage_names)}")
    max_score = round(sum(weights.values()), 6)
    cifar10 = spec.stages.get("cifar10", {})
    ration = cifar10.get("cpu_minutes_per_day", cifar10.get("training_cpu_minutes_per_day"))
    return SpecSummary(parsed=tomllib.loads(spec_toml), version=spec_version_of(spec_toml), stage_weights=weights,
                       max_score=max_score, pass_mark=round(spec.pass_mark * max_score, 6),
                       training_cpu_minutes_per_day=float(ration) if isinstance(ration, (int, float)) else None)
