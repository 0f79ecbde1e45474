"""The CIFAR-10 stage trains and evaluates the architecture the spec names, with the flatten step it grades.

A current-course package copy (relative imports, Conv2d/MaxPool2d, reshape instead of Flatten, one Linear layer)
trains under grader/specs/current_course.toml on a tiny synthetic data set; the grader loads the handed-back
parameters into the current course's network to compute the accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from grader.datasets.cifar10 import prepare
from grader.pipeline import grade_submission
from grader.settings import get_settings
from grader.spec import load_spec
from grader.training.recipe import StageConfig
from grader.training.weights import load_weights
from reference import simple_cnn
from reference.architectures import CURRENT_COURSE
from sandbox.select import select_runner
from sandbox.subprocess_backend import SubprocessRunner
from tests.fixtures.cifar10 import write_tiny_archive

ROOT = Path(__file__).resolve().parents[3]
PACKAGE_COPY = (ROOT / "tests" / "fixtures" / "submissions" / "course_package_copy.py").read_bytes()
SMALL_RUN = {"epochs": 1, "batch_size": 32, "max_batches_per_epoch": 3, "report_every_batches": 1,
             "probe": {"warmup_batches": 1, "batches": 1}}


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    prepared, _ = prepare(write_tiny_archive(root / "tiny.tar.gz"), root / "cache")
    return get_settings().model_copy(update={"cifar10_cache_dir": prepared.root})


def current_course_spec():
    spec = load_spec(ROOT / "grader" / "specs" / "current_course.toml")
    return dataclasses.replace(spec, stages={**spec.stages, "cifar10": {**spec.stages["cifar10"], **SMALL_RUN}})


def test_recipe_follows_the_spec_architecture_and_flatten_kind():
    spec = load_spec(ROOT / "grader" / "specs" / "current_course.toml")
    config = StageConfig.from_spec(spec.stages["cifar10"], get_settings(), architecture=spec.architecture,
                                   flatten=spec.correctness.flatten)
    assert config.network is CURRENT_COURSE and config.architecture == "current_course"
    kinds = [kind for kind, _, _ in config.recipe["architecture"]]
    # Each ReLU runs after the max pool that follows it (Architecture.training_order): the same numbers.
    assert kinds == ["conv2d", "maxpool2d", "relu", "conv2d", "maxpool2d", "relu", "reshape", "linear"]
    default = load_spec()
    config = StageConfig.from_spec(default.stages["cifar10"], get_settings(), architecture=default.architecture)
    assert [kind for kind, _, _ in config.recipe["architecture"]][6] == "flatten"


def test_weights_are_validated_against_the_architecture():
    params = simple_cnn.init_params(0, architecture=CURRENT_COURSE)
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **params)
    loaded, problems = load_weights(buffer.getvalue(), CURRENT_COURSE)
    assert problems == [] and set(loaded) == set(CURRENT_COURSE.parameter_shapes())
    rejected, problems = load_weights(buffer.getvalue())  # the module text's network has fc1/fc2, not fc
    assert rejected is None and any("fc1.weight" in problem for problem in problems)


def _assert_trained(result):
    stage = result.stages[0]
    assert stage.status == "graded", (stage.message, stage.details.get("log_tail"))
    record = result.to_json()["cifar10"]
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["epochs"] == 1


def test_current_course_package_copy_trains_in_the_subprocess_runner(settings):
    result = grade_submission(PACKAGE_COPY, spec=current_course_spec(), stages=["cifar10"],
                              runner=SubprocessRunner(), settings=settings)
    _assert_trained(result)


@pytest.mark.docker
def test_current_course_package_copy_trains_in_docker(settings):
    result = grade_submission(PACKAGE_COPY, spec=current_course_spec(), stages=["cifar10"],
                              runner=select_runner(settings, "docker"), settings=settings)
    _assert_trained(result)
    assert result.stages[0].details.get("backend", "docker") == "docker"
