"""The kit's large element-wise passes (ReLU forward and backward) split over threads give the one-thread result."""

from __future__ import annotations

import numpy as np
import pytest

from tinytorch.core import _parallel
from tinytorch.core.tensor import Tensor


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threaded_relu_matches_numpy_and_keeps_the_memory_layout(threads, monkeypatch):
    monkeypatch.setattr(_parallel, "_threads", threads)
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS", 0)
    rng = np.random.default_rng(0)
    channels_last = rng.standard_normal((5, 7, 6, 4)).astype(np.float32)
    x = Tensor(channels_last.transpose(0, 3, 1, 2), requires_grad=True)
    y = x.relu()
    np.testing.assert_array_equal(y.data, np.maximum(x.data, 0))
    assert y.data.strides == x.data.strides
    grad = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(grad)
    np.testing.assert_array_equal(x.grad, grad * (x.data > 0))
    assert x.grad.dtype == np.float32


def test_relu_gradient_is_bitwise_the_masked_product_for_special_values():
    """Zeros of either sign, infinities and NaNs in the input or the gradient: grad * (x > 0), bit for bit."""
    specials = np.array([-0.0, 0.0, np.inf, -np.inf, np.nan, -1.5, 2.5, 1e-45], dtype=np.float32)
    x = Tensor(np.repeat(specials, len(specials)), requires_grad=True)
    grad = np.tile(specials, len(specials))
    with np.errstate(invalid="ignore"):  # inf * 0, as NumPy warns for grad * (x > 0) itself
        x.relu().backward(grad)
        expected = grad * (x.data > 0)
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad.view(np.uint32), expected.view(np.uint32))


def test_small_passes_stay_on_the_calling_thread(monkeypatch):
    calls = []
    monkeypatch.setattr(_parallel, "_threads", 2)
    _parallel.elementwise(lambda a, out: calls.append(len(a)) or np.copyto(out, a), np.empty(8), np.ones(8))
    assert calls == [8]
