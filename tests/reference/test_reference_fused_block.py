"""The fused first block (conv, ReLU, 2x2 max-pool in one pass) against the loop oracle's three layers and PyTorch."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.reference.torch_oracle import tolerance
from reference import layers_fast, layers_loop

# (N, C, H, W, F, KH, KW, padding, bias): SimpleCNN's shape in small, odd conv outputs (a row and a column
# outside every window), non-square kernels, no padding.
CASES = [
    (2, 3, 8, 8, 4, 3, 3, 1, True),
    (3, 2, 7, 9, 3, 3, 3, 1, True),
    (2, 3, 9, 6, 2, 2, 3, (0, 1), False),
    (1, 1, 5, 5, 2, 3, 3, 0, True),
]


def _loop_block(x, w, b, padding, dout):
    conv, conv_cache = layers_loop.conv2d_forward(x, w, b, stride=1, padding=padding)
    relu = np.maximum(conv, 0)
    pooled, pool_cache = layers_loop.maxpool2d_forward(relu, kernel_size=2)
    drelu = layers_loop.maxpool2d_backward(dout, pool_cache)
    dx, dw, db = layers_loop.conv2d_backward(drelu * (conv > 0), conv_cache)
    return pooled, dx, dw, db


def _torch_block(x, w, b, padding, dout):
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    out = F.max_pool2d(F.relu(F.conv2d(xt, wt, bt, padding=padding)), 2)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), None if b is None else bt.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=str)
def test_fused_block_matches_loop_oracle_and_torch(case, dtype):
    n, c, h, w, f, kh, kw, padding, bias = case
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((f, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    out, cache = layers_fast.conv2d_relu_maxpool2x2_forward(x, weight, b, padding=padding)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = layers_fast.conv2d_relu_maxpool2x2_backward(dout, cache)
    for expected in (_loop_block(x, weight, b, padding, dout), _torch_block(x, weight, b, padding, dout)):
        assert out.shape == expected[0].shape and out.dtype == dx.dtype == dw.dtype == np.dtype(dtype)
        np.testing.assert_allclose(out, expected[0], **tolerance(dtype))
        np.testing.assert_allclose(dx, expected[1], **tolerance(dtype))
        np.testing.assert_allclose(dw, expected[2], **tolerance(dtype))
        if bias:
            np.testing.assert_allclose(db, expected[3], **tolerance(dtype))
        else:
            assert db is None
    skipped_dx, dw_again, _ = layers_fast.conv2d_relu_maxpool2x2_backward(dout, cache, need_dx=False)
    assert skipped_dx is None
    np.testing.assert_array_equal(dw_again, dw)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_block_ties_follow_the_first_maximum_like_torch(dtype):
    """Flat image regions give equal conv outputs in a window: the gradient goes to the first, row-major."""
    rng = np.random.default_rng(3)
    x = np.repeat(np.repeat(rng.integers(0, 3, (2, 2, 3, 3)), 2, axis=2), 2, axis=3).astype(dtype)
    x = np.pad(x, ((0, 0), (0, 0), (0, 2), (0, 2)))
    weight = np.abs(rng.standard_normal((3, 2, 1, 1))).astype(dtype)
    b = np.full(3, 0.5, dtype=dtype)
    out, cache = layers_fast.conv2d_relu_maxpool2x2_forward(x, weight, b, padding=0)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = layers_fast.conv2d_relu_maxpool2x2_backward(dout, cache)
    expected = _torch_block(x, weight, b, 0, dout)
    np.testing.assert_array_equal(out, expected[0])
    np.testing.assert_allclose(dx, expected[1], **tolerance(dtype))
    np.testing.assert_allclose(dw, expected[2], **tolerance(dtype))


def test_fused_block_rejects_a_map_too_small_to_pool():
    with pytest.raises(ValueError, match="too small for a 2x2 pool"):
        layers_fast.conv2d_relu_maxpool2x2_forward(np.zeros((1, 1, 3, 3)), np.zeros((1, 1, 3, 3)), None, padding=0)
