"""The correctness stage through the real Docker sandbox: same harness, same scores as the subprocess runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.pipeline import grade_submission
from grader.settings import get_settings
from sandbox.select import select_runner
from tests.fixtures.mutants import mutant_source

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture(scope="module")
def docker_runner():
    return select_runner(get_settings(), "docker")


@pytest.mark.docker
def test_correct_file_gets_every_point_in_docker(docker_runner, spec, full_score):
    result = grade_submission((FIXTURES / "submissions" / "good_vectorized.py").read_bytes(), spec=spec,
                              stages=["correctness"], runner=docker_runner)
    assert [test.name for test in result.tests if test.status != "passed"] == []
    assert result.score == pytest.approx(full_score)
    assert result.stages[0].details["backend"] == docker_runner.name


@pytest.mark.docker
def test_mutant_scores_the_same_in_docker_and_subprocess(docker_runner, grade, spec):
    source = mutant_source("maxpool_ties_to_last")
    in_docker = grade_submission(source, spec=spec, stages=["correctness"], runner=docker_runner)
    assert in_docker.score == pytest.approx(grade(source).score)
    assert {test.name: test.status for test in in_docker.tests} == {test.name: test.status for test in grade(source).tests}
