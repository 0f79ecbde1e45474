"""The grader's own test-set evaluation: plain accuracy, and the test-time flip a recipe may ask for."""

from __future__ import annotations

import numpy as np
import pytest

from grader.datasets.cifar10 import open_prepared, prepare
from grader.training import evaluation
from grader.training.evaluation import mean_probabilities
from grader.training.recipe import DEFAULT_RECIPE
from reference import simple_cnn
from tests.fixtures.cifar10 import write_tiny_archive


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar10")
    prepared, _ = prepare(write_tiny_archive(root / "tiny.tar.gz"), root / "cache")
    return open_prepared(prepared.root)


def test_mean_probabilities_averages_softmax_not_logits():
    a = np.array([[10.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    b = np.array([[0.0, 0.5], [0.0, 1.0]], dtype=np.float32)
    softmax = lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(mean_probabilities(a, b), (softmax(a) + softmax(b)) / 2, rtol=1e-6)
    # Summing logits would pick class 0 for row 0 too, but with a different margin: probabilities are bounded.
    assert mean_probabilities(a, b)[0].argmax() == 0


def test_flip_evaluation_reports_both_and_judges_the_flip(prepared):
    params = simple_cnn.init_params(3)
    plain_recipe = {**DEFAULT_RECIPE, "evaluation": {"horizontal_flip": False}}
    flip_recipe = {**DEFAULT_RECIPE, "evaluation": {"horizontal_flip": True}}
    plain = evaluation.test_accuracies(params, prepared, plain_recipe)
    flipped = evaluation.test_accuracies(params, prepared, flip_recipe)
    assert "flip" not in plain and plain["judged"] == plain["plain"]
    assert flipped["plain"] == plain["plain"] and flipped["judged"] == flipped["flip"]
    # Computed independently: the reference forward pass on the normalized images and on their mirror images.
    images = np.asarray(prepared.test_images()).astype(np.float32) / 255.0
    mean = np.asarray(DEFAULT_RECIPE["normalize"]["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(DEFAULT_RECIPE["normalize"]["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    x = (images - mean) / std
    labels = prepared.test_labels()
    both = mean_probabilities(simple_cnn.predict(params, x), simple_cnn.predict(params, x[..., ::-1].copy()))
    assert flipped["flip"] == pytest.approx(float((both.argmax(1) == labels).mean()))
