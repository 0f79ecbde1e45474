"""Test accuracy of trained parameters, computed here with the reference forward pass (the test labels never
enter the sandbox), and the prepared data set it needs."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Mapping

import numpy as np

from grader.datasets.cifar10 import DatasetError, PreparedCifar10, open_prepared, prepare
from grader.settings import Settings
from reference import simple_cnn
from reference.architectures import MODULE_TEXT, Architecture
from sandbox.runner import InfrastructureError


@lru_cache(maxsize=2)
def _normalized_test_set(root: str, mean: tuple, std: tuple, subset: int | None) -> tuple[np.ndarray, np.ndarray]:
    prepared = open_prepared(Path(root))
    images = np.asarray(prepared.test_images())
    labels = prepared.test_labels().astype(np.int64)
    if subset:
        # Evenly spaced over the (shuffled) cache: a fixed, roughly class-balanced sample.
        pick = np.linspace(0, len(labels) - 1, num=min(int(subset), len(labels))).astype(np.int64)
        images, labels = images[pick], labels[pick]
    mean_array, std_array = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    scale = (1.0 / (255.0 * std_array)).astype(np.float32).reshape(1, -1, 1, 1)
    shift = (mean_array / std_array).astype(np.float32).reshape(1, -1, 1, 1)
    return images.astype(np.float32) * scale - shift, labels


def mean_probabilities(*logits: np.ndarray) -> np.ndarray:
    """Softmax probabilities averaged over several views of the same images (each (N, classes))."""
    total = None
    for view in logits:
        shifted = np.exp(view - view.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        total = probabilities if total is None else total + probabilities
    return total / len(logits)


def test_accuracies(params: Mapping[str, np.ndarray], prepared: PreparedCifar10, recipe: Mapping,
                    subset: int | None = None, architecture: Architecture = MODULE_TEXT, *,
                    always_flip: bool = False) -> dict[str, float]:
    """Accuracy of the parameters on the test set, with the reference forward pass, outside any sandbox.

    Returns `plain` (each image once) and, when the recipe's `evaluation.horizontal_flip` is set (or
    `always_flip`, for benchmarks that record both), `flip` (class probabilities averaged over each image and its
    mirror image, the standard test-time flip; training already flips at random, so the mirror is an image of the
    same distribution). `judged` is the one the recipe scores.
    """
    judge_flip = bool(recipe.get("evaluation", {}).get("horizontal_flip", False))
    x, y = _normalized_test_set(str(prepared.root), tuple(recipe["normalize"]["mean"]),
                                tuple(recipe["normalize"]["std"]), subset)
    logits = simple_cnn.predict(params, x, architecture=architecture)
    accuracies = {"plain": float((logits.argmax(axis=1) == y).mean())}
    if judge_flip or always_flip:
        mirrored = simple_cnn.predict(params, np.ascontiguousarray(x[..., ::-1]), architecture=architecture)
        accuracies["flip"] = float((mean_probabilities(logits, mirrored).argmax(axis=1) == y).mean())
    accuracies["judged"] = accuracies["flip" if judge_flip else "plain"]
    return accuracies


def ensure_dataset(settings: Settings) -> PreparedCifar10:
    """The prepared cache; prepared once from settings.cifar10_source when missing (about half a minute)."""
    try:
        return open_prepared(settings.cifar10_cache_dir)
    except DatasetError:
        pass
    try:
        prepared, _ = prepare(settings.cifar10_source, settings.cifar10_cache_dir)
    except (DatasetError, OSError) as error:
        # Not the student's fault: the operator must provide the data set (`grader dataset prepare --source`).
        raise InfrastructureError(f"no CIFAR-10 data set: {error}") from error
    return prepared
