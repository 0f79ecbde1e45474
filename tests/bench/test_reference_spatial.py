"""bench/reference_spatial.py (the reference's layers as a student file) trains through the kit like the reference."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from reference import simple_cnn

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "reference" / "kit") not in sys.path:
    sys.path.insert(0, str(ROOT / "reference" / "kit"))

from tinytorch.core.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.core.tensor import Tensor  # noqa: E402


def _load():
    spec = importlib.util.spec_from_file_location("reference_spatial", ROOT / "bench" / "reference_spatial.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_kit_step_on_the_wrapped_layers_gives_the_reference_gradients():
    params = simple_cnn.init_params(4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 6)
    net = _load().SimpleCNN()
    for name, value in params.items():
        layer, attribute = name.split(".")
        setattr(getattr(net, layer), attribute, Tensor(value.copy(), requires_grad=True))
    logits = net.forward(Tensor(x))
    loss = CrossEntropyLoss(label_smoothing=0.1)(logits, labels)
    loss.backward()

    expected_logits, cache = simple_cnn.forward(params, x)
    expected_loss, dlogits = simple_cnn.softmax_cross_entropy(expected_logits, labels, label_smoothing=0.1)
    expected = simple_cnn.backward(dlogits, cache)
    np.testing.assert_allclose(logits.data, expected_logits, rtol=1e-4, atol=1e-5)
    assert abs(float(loss.data) - expected_loss) < 1e-5
    for name in simple_cnn.PARAM_SHAPES:
        layer, attribute = name.split(".")
        np.testing.assert_allclose(getattr(getattr(net, layer), attribute).grad, expected[name], rtol=1e-3, atol=1e-6)


def test_the_benchmarks_data_parallel_kit_step_gives_the_reference_gradients():
    """bench.kit_step times the harness's data-parallel step: its gradient is the reference's one-pass gradient."""
    from bench.kit_step import DataParallelKitStep

    rng = np.random.default_rng(6)
    x = rng.standard_normal((40, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, 40)
    step = DataParallelKitStep(_load(), x, labels, workers=2)
    logits, loss = step.parallel.gradients(x, labels)
    params = simple_cnn.init_params(0, np.float32)
    expected_logits, cache = simple_cnn.forward(params, x)
    expected_loss, dlogits = simple_cnn.softmax_cross_entropy(expected_logits, labels)
    expected = simple_cnn.backward(dlogits, cache)
    np.testing.assert_allclose(logits.data, expected_logits, rtol=1e-4, atol=1e-5)
    assert abs(float(loss.data) - expected_loss) < 1e-5
    primary = step.parallel.members[0].params
    assert len(step.parallel.members) == 2 and set(primary) == set(expected)
    for name, grad in expected.items():
        np.testing.assert_allclose(primary[name].grad, grad, rtol=1e-3, atol=1e-6, err_msg=name)
