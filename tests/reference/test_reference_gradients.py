"""Backward passes against central finite differences (float64, small shapes), and the max-pool tie rule."""

from __future__ import annotations

import numpy as np
import pytest

EPSILON = 1e-6


def numerical_gradient(function, array: np.ndarray, dout: np.ndarray) -> np.ndarray:
    """d(sum(function() * dout)) / d(array) by central differences, perturbing `array` in place."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + EPSILON
        plus = np.sum(function() * dout)
        array[index] = saved - EPSILON
        minus = np.sum(function() * dout)
        array[index] = saved
        gradient[index] = (plus - minus) / (2 * EPSILON)
    return gradient


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding",
    [
        ((2, 2, 5, 4), (3, 2, 3, 3), 1, 1),
        ((2, 3, 6, 5), (2, 3, 2, 3), (2, 1), (0, 2)),
        ((1, 2, 7, 7), (2, 2, 3, 3), 3, 2),
    ],
)
def test_conv2d_backward_matches_finite_differences(layers, x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(11)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])
    out, cache = layers.conv2d_forward(x, w, b, stride=stride, padding=padding)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = layers.conv2d_backward(dout, cache)

    def run():
        return layers.conv2d_forward(x, w, b, stride=stride, padding=padding)[0]

    np.testing.assert_allclose(dx, numerical_gradient(run, x, dout), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dw, numerical_gradient(run, w, dout), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, numerical_gradient(run, b, dout), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("kernel_size, stride", [(2, None), (3, 2), ((2, 3), 1)])
def test_pool_backward_matches_finite_differences(layers, kind, kernel_size, stride):
    # Distinct, well-separated values keep every max away from a tie under the +-EPSILON perturbation.
    x = np.random.default_rng(5).permutation(2 * 2 * 7 * 6).reshape(2, 2, 7, 6).astype(np.float64) * 0.1
    forward = layers.maxpool2d_forward if kind == "max" else layers.avgpool2d_forward
    backward = layers.maxpool2d_backward if kind == "max" else layers.avgpool2d_backward
    out, cache = forward(x, kernel_size=kernel_size, stride=stride)
    dout = np.random.default_rng(6).standard_normal(out.shape)

    def run():
        return forward(x, kernel_size=kernel_size, stride=stride)[0]

    np.testing.assert_allclose(backward(dout, cache), numerical_gradient(run, x, dout), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maxpool_tie_sends_gradient_to_first_maximum_in_row_major_order(layers, dtype):
    x = np.array([[[[1.0, 5.0, 5.0, 0.0],
                    [5.0, 5.0, 2.0, 2.0],
                    [7.0, 7.0, 3.0, 4.0],
                    [7.0, 7.0, 4.0, 4.0]]]], dtype=dtype)
    x = np.concatenate([x, x[:, :, ::-1]], axis=1)  # also a batch of channels, so layouts other than (1, 1) arise
    out, cache = layers.maxpool2d_forward(x, kernel_size=2)
    np.testing.assert_array_equal(out[:, :1], [[[[5.0, 5.0], [7.0, 4.0]]]])
    dx = layers.maxpool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]] * 2, dtype=dtype).reshape(1, 2, 2, 2),
                                   cache)[:, :1]
    np.testing.assert_array_equal(dx, [[[[0.0, 1.0, 2.0, 0.0],
                                         [0.0, 0.0, 0.0, 0.0],
                                         [3.0, 0.0, 0.0, 4.0],
                                         [0.0, 0.0, 0.0, 0.0]]]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_maxpool_constant_input_routes_each_window_to_its_top_left(layers, dtype):
    x = np.ones((2, 3, 4, 6), dtype=dtype)
    out, cache = layers.maxpool2d_forward(x, kernel_size=2)
    dx = layers.maxpool2d_backward(np.ones_like(out), cache)
    expected = np.zeros_like(x)
    expected[:, :, ::2, ::2] = 1.0
    np.testing.assert_array_equal(dx, expected)
