"""Fixtures of the engine's tests: the UNSAFE subprocess runner (the Docker security suite is tests/security)."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.stages.correctness import max_score
from grader.pipeline import grade_submission
from grader.spec import load_spec
from sandbox.subprocess_backend import SubprocessRunner

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SUBMISSIONS = FIXTURES / "submissions"


@pytest.fixture(scope="session")
def runner() -> SubprocessRunner:
    return SubprocessRunner()


@pytest.fixture(scope="session")
def spec():
    return load_spec()


@pytest.fixture(scope="session")
def full_score(spec) -> float:
    return max_score(spec)


@pytest.fixture(scope="session")
def grade(runner, spec):
    """grade(source: bytes | str) -> GradingResult of the correctness stage, cached per source."""
    cache: dict[bytes, object] = {}

    def run(source):
        data = source.encode() if isinstance(source, str) else source
        if data not in cache:
            cache[data] = grade_submission(data, spec=spec, stages=["correctness"], runner=runner)
        return cache[data]

    return run

