"""Both reference implementations against PyTorch CPU, forward and backward, over many shapes and both dtypes."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tests.reference.torch_oracle import tolerance, torch_conv2d, torch_pool, torch_pool_output_shape

# (N, C, H, W, F, KH, KW, stride, padding, bias): batch > 1, channels > 1, H != W, kernels 1/2/3/5 and
# non-square, strides 1/2/3 and mixed, padding 0/1/2 and mixed.
CONV_CASES = [
    (2, 3, 7, 6, 4, 3, 3, 1, 1, True),
    (2, 3, 8, 8, 2, 1, 1, 1, 0, True),
    (3, 2, 9, 7, 3, 2, 2, 2, 0, True),
    (2, 4, 11, 10, 3, 5, 5, 1, 2, True),
    (2, 2, 12, 9, 3, 3, 3, 3, 1, True),
    (2, 3, 10, 8, 2, 2, 3, (2, 1), (1, 2), True),
    (2, 3, 6, 9, 4, 3, 1, 1, (0, 1), False),
    (1, 1, 5, 5, 1, 5, 5, 1, 0, False),
    (2, 2, 9, 11, 3, 3, 5, (3, 2), 2, False),
    (3, 2, 4, 4, 2, 3, 3, 2, 2, True),
    # Same-size stride-1 convolutions (a fast path) on planes smaller than the kernel's reach.
    (2, 2, 1, 5, 3, 3, 3, 1, 1, True),
    (2, 2, 5, 2, 2, 5, 5, 1, 2, True),
    (1, 2, 2, 2, 2, 5, 3, 1, (2, 1), False),
    (2, 3, 6, 1, 2, 3, 3, 1, 1, True),
]


def _conv_id(case):
    n, c, h, w, f, kh, kw, stride, padding, bias = case
    return f"x{n}x{c}x{h}x{w}-w{f}x{kh}x{kw}-s{stride}-p{padding}-{'bias' if bias else 'nobias'}".replace(" ", "")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES, ids=_conv_id)
def test_conv2d_matches_torch(layers, case, dtype):
    n, c, h, w, f, kh, kw, stride, padding, bias = case
    rng = np.random.default_rng(zlib.crc32(_conv_id(case).encode()))
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    weight = rng.standard_normal((f, c, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    out, cache = layers.conv2d_forward(x, weight, b, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape).astype(dtype)
    expected_out, expected_dx, expected_dw, expected_db = torch_conv2d(x, weight, b, stride, padding, dout)
    dx, dw, db = layers.conv2d_backward(dout, cache)

    assert out.shape == expected_out.shape
    assert out.dtype == dx.dtype == dw.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, expected_out, **tolerance(dtype))
    np.testing.assert_allclose(dx, expected_dx, **tolerance(dtype))
    np.testing.assert_allclose(dw, expected_dw, **tolerance(dtype))
    if bias:
        assert db.dtype == np.dtype(dtype)
        np.testing.assert_allclose(db, expected_db, **tolerance(dtype))
    else:
        assert db is None


# (N, C, H, W, kernel_size, stride): default stride, overlapping windows, non-square, leftover rows/cols.
POOL_CASES = [
    (2, 3, 8, 6, 2, None),
    (2, 2, 9, 7, 2, None),
    (3, 2, 9, 8, 3, 2),
    (2, 3, 7, 10, (2, 3), 1),
    (2, 2, 10, 9, 3, None),
    (2, 2, 11, 8, (3, 2), (2, 1)),
    (1, 1, 5, 5, 5, None),
    (2, 2, 6, 6, 1, 1),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda case: "-".join(map(str, case)).replace(" ", ""))
def test_pool_matches_torch(layers, case, dtype, kind):
    n, c, h, w, kernel_size, stride = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    forward = layers.maxpool2d_forward if kind == "max" else layers.avgpool2d_forward
    backward = layers.maxpool2d_backward if kind == "max" else layers.avgpool2d_backward
    out, cache = forward(x, kernel_size=kernel_size, stride=stride)
    dout = rng.standard_normal(out.shape).astype(dtype)
    expected_out, expected_dx = torch_pool(kind, x, kernel_size, stride, dout)
    dx = backward(dout, cache)

    assert out.shape == torch_pool_output_shape(x.shape, kernel_size, stride)
    assert out.dtype == dx.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, expected_out, **tolerance(dtype))
    np.testing.assert_allclose(dx, expected_dx, **tolerance(dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", POOL_CASES[:4], ids=lambda case: "-".join(map(str, case)).replace(" ", ""))
def test_maxpool_with_many_ties_matches_torch(layers, case, dtype):
    """Small-integer inputs put several maxima in most windows; PyTorch sends the gradient to the first."""
    n, c, h, w, kernel_size, stride = case
    x = np.random.default_rng(3).integers(0, 3, (n, c, h, w)).astype(dtype)
    out, cache = layers.maxpool2d_forward(x, kernel_size=kernel_size, stride=stride)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    _, expected_dx = torch_pool("max", x, kernel_size, stride, dout)
    # Overlapping windows sum several routed gradients, so only the summation order may differ.
    np.testing.assert_allclose(layers.maxpool2d_backward(dout, cache), expected_dx, rtol=1e-6, atol=1e-7)


def test_flatten_is_row_major_and_reverts(layers):
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    out, cache = layers.flatten_forward(x)
    assert out.shape == (2, 60) and out.dtype == np.float32
    np.testing.assert_array_equal(out[1], x[1].ravel())
    dout = np.random.default_rng(0).standard_normal((2, 60)).astype(np.float32)
    np.testing.assert_array_equal(layers.flatten_backward(dout, cache), dout.reshape(2, 3, 4, 5))
