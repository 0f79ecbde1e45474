"""Bad input raises ValueError saying what was expected; shape helpers agree with PyTorch; layouts and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import layers_fast
from reference.shapes import conv2d_output_shape, pool2d_output_shape

X = np.zeros((2, 3, 8, 8))
W = np.zeros((4, 3, 3, 3))


@pytest.mark.parametrize(
    "x, w, b, stride, padding, message",
    [
        (np.zeros((3, 8, 8)), W, None, 1, 0, "4-D (N, C, H, W)"),
        (X, np.zeros((4, 3, 3)), None, 1, 0, "4-D (F, C, KH, KW)"),
        (X, np.zeros((4, 2, 3, 3)), None, 1, 0, "input channels"),
        (X, W, np.zeros(3), 1, 0, "shape (F,) = (4,)"),
        (X, np.zeros((4, 3, 11, 3)), None, 1, 1, "larger than the padded input"),
        (X, W, None, 0, 0, "stride must be positive"),
        (X, W, None, (1, -2), 0, "stride must be positive"),
        (X, W, None, 1, -1, "padding must be >= 0"),
        (X, W, None, 1.5, 0, "stride must be an int or an (h, w) tuple"),
        (X, W, None, (1, 2, 3), 0, "stride must be an int or an (h, w) tuple"),
        (X.astype(complex), W, None, 1, 0, "real numbers"),
    ],
)
def test_conv2d_rejects_bad_input(layers, x, w, b, stride, padding, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        layers.conv2d_forward(x, w, b, stride=stride, padding=padding)


@pytest.mark.parametrize(
    "x, kernel_size, stride, message",
    [
        (np.zeros((8, 8)), 2, None, "4-D"),
        (X, 9, None, "larger than the padded input"),
        (X, 0, None, "kernel_size must be positive"),
        (X, 2, 0, "stride must be positive"),
        (X, (2, 2, 2), None, "kernel_size must be an int"),
    ],
)
def test_pools_reject_bad_input(layers, x, kernel_size, stride, message):
    for forward in (layers.maxpool2d_forward, layers.avgpool2d_forward):
        with pytest.raises(ValueError, match=message):
            forward(x, kernel_size=kernel_size, stride=stride)


def test_backward_rejects_a_gradient_of_the_wrong_shape(layers):
    out, cache = layers.conv2d_forward(X, W, None, stride=1, padding=1)
    with pytest.raises(ValueError, match=r"forward output's shape \(2, 4, 8, 8\)"):
        layers.conv2d_backward(np.zeros((2, 4, 8, 7)), cache)
    _, pool_cache = layers.maxpool2d_forward(X, kernel_size=2)
    with pytest.raises(ValueError, match="forward output's shape"):
        layers.maxpool2d_backward(np.zeros((2, 3, 3, 4)), pool_cache)
    _, flat_cache = layers.flatten_forward(X)
    with pytest.raises(ValueError, match="forward output's shape"):
        layers.flatten_backward(np.zeros((2, 10)), flat_cache)


def test_flatten_rejects_a_vector(layers):
    with pytest.raises(ValueError, match="batch axis"):
        layers.flatten_forward(np.zeros(5))


@pytest.mark.parametrize(
    "size, kernel, stride, padding", [(8, 3, 1, 1), (9, 2, 2, 0), (11, 5, 3, 2), (7, (2, 3), (2, 1), (1, 0))]
)
def test_output_shapes_agree_with_torch(size, kernel, stride, padding):
    kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    x = torch.zeros(2, 3, size, size + 1)
    expected_conv = tuple(F.conv2d(x, torch.zeros(4, 3, kh, kw), stride=stride, padding=padding).shape)
    assert conv2d_output_shape(tuple(x.shape), (4, 3, kh, kw), stride=stride, padding=padding) == expected_conv
    expected_pool = tuple(F.max_pool2d(x, kernel, stride).shape)
    assert pool2d_output_shape(tuple(x.shape), kernel_size=kernel, stride=stride) == expected_pool
    assert layers_fast.pool2d_output_shape is pool2d_output_shape


@pytest.mark.parametrize("width", [5, 6])
def test_fast_layers_accept_any_memory_layout_and_keep_float32(width):
    """Channel-major views (what the fast conv returns) and plain C-order arrays give identical results."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 6, width)).astype(np.float32)
    x_channel_major = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    w = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    out_a, cache_a = layers_fast.conv2d_forward(x, w, None, stride=1, padding=1)
    out_b, cache_b = layers_fast.conv2d_forward(x_channel_major, w, None, stride=1, padding=1)
    np.testing.assert_array_equal(out_a, out_b)
    dout = rng.standard_normal(out_a.shape).astype(np.float32)
    for dout_layout in (dout, np.asfortranarray(dout)):
        dx_a, dw_a, _ = layers_fast.conv2d_backward(dout_layout, cache_a)
        dx_b, dw_b, _ = layers_fast.conv2d_backward(dout, cache_b)
        np.testing.assert_allclose(dx_a, dx_b, rtol=1e-6)
        np.testing.assert_allclose(dw_a, dw_b, rtol=1e-5)
        assert dx_a.dtype == dw_a.dtype == np.float32
    for array in (x, x_channel_major, np.asfortranarray(x)):
        pooled, pool_cache = layers_fast.maxpool2d_forward(array, kernel_size=2)
        even = 2 * (width // 2)
        windows = x[:, :, :, :even].reshape(3, 4, 3, 2, even // 2, 2)
        np.testing.assert_array_equal(pooled, windows.max(axis=(3, 5)))
        dx = layers_fast.maxpool2d_backward(np.ones_like(pooled), pool_cache)
        assert dx.dtype == np.float32 and dx.shape == x.shape and dx.sum() == pooled.size
        np.testing.assert_array_equal(dx[:, :, :, :even].reshape(3, 4, 3, 2, even // 2, 2).sum(axis=(3, 5)), 1.0)
        flat, flat_cache = layers_fast.flatten_forward(array)
        np.testing.assert_array_equal(flat, x.reshape(3, -1))


def test_mixed_dtypes_compute_in_the_wider_type(layers):
    out, _ = layers.conv2d_forward(X.astype(np.float32), W, None, stride=1, padding=0)
    assert out.dtype == np.float64
    out, _ = layers.conv2d_forward(X.astype(np.float32), W.astype(np.float32), None, stride=1, padding=0)
    assert out.dtype == np.float32
