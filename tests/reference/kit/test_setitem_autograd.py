"""Writes into tensors (`t[index] = value`) keep autograd: the module text's loop style must train."""

import sys

import numpy as np
import pytest
import torch

from tinytorch.core.tensor import Tensor


def loop_conv(x, weight, bias, stride=1):
    """The module text's Conv2D.forward, verbatim apart from the arguments."""
    batch, _, H, W = x.shape
    out_channels, _, kh, kw = weight.shape
    out_h = (H - kh) // stride + 1
    out_w = (W - kw) // stride + 1
    output = Tensor(shape=(batch, out_channels, out_h, out_w))
    for b in range(batch):
        for oc in range(out_channels):
            for i in range(out_h):
                for j in range(out_w):
                    i_start = i * stride
                    j_start = j * stride
                    patch = x[b, :, i_start:i_start + kh, j_start:j_start + kw]
                    output[b, oc, i, j] = (patch * weight[oc]).sum() + bias[oc]
    return output


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loop_style_conv_matches_torch(rng, dtype):
    xw = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    ww = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    bw = rng.standard_normal(4).astype(dtype)
    x, w, b = (Tensor(a, requires_grad=True) for a in (xw, ww, bw))
    out = loop_conv(x, w, b, stride=2)
    assert out.dtype == dtype  # a float64 layer stays float64 although Tensor(shape=...) starts as float32
    upstream = rng.standard_normal(out.shape).astype(dtype)
    out.backward(upstream)

    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (xw, ww, bw))
    expected = torch.nn.functional.conv2d(tx, tw, tb, stride=2)
    expected.backward(torch.tensor(upstream))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(w.grad, tw.grad.numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(b.grad, tb.grad.numpy(), rtol=tol, atol=tol)


def test_later_write_wins_and_gets_the_gradient():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([10.0, 20.0]), requires_grad=True)
    out = Tensor(shape=(3,))
    out[:] = a
    out[1:] = b
    out[2] = 7.0  # a constant finally overwrites the last element
    np.testing.assert_array_equal(out.data, [1.0, 10.0, 7.0])
    out.backward(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(a.grad, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(b.grad, [2.0, 0.0])


def test_accumulating_writes_with_plus_equals():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    out = Tensor(shape=(2,))
    for c in range(3):
        out[0] += x[0, c] * x[0, c]
        out[1] += x[1, c] * 2
    np.testing.assert_allclose(out.data, [0 + 1 + 4, 2 * (3 + 4 + 5)])
    out.backward(np.array([1.0, 1.0]))
    np.testing.assert_allclose(x.grad, [[0.0, 2.0, 4.0], [2.0, 2.0, 2.0]])


def test_write_into_a_computed_tensor_keeps_the_rest_of_its_gradient():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x * 2
    z = Tensor(np.array([5.0]), requires_grad=True)
    y[1:2] = z * z
    (y * Tensor(np.array([1.0, 10.0, 100.0]))).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 0.0, 200.0])
    np.testing.assert_allclose(z.grad, [100.0])


def test_values_read_before_a_write_are_not_changed_by_it():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    buffer = Tensor(shape=(2,))
    buffer[:] = x
    doubled = buffer * 3  # uses the current contents
    buffer[0] = 100.0
    np.testing.assert_array_equal(doubled.data, [3.0, 6.0])
    (doubled.sum() + buffer.sum()).backward()
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_padding_by_assignment():
    x = Tensor(np.arange(4.0).reshape(1, 1, 2, 2), requires_grad=True)
    padded = Tensor(shape=(1, 1, 4, 4))
    padded[:, :, 1:3, 1:3] = x
    (padded * padded).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * x.data)


def test_constant_writes_need_no_graph():
    t = Tensor(shape=(2, 2))
    t[0, 0] = 3.0
    t[1] = np.array([1.0, 2.0])
    assert t._grad_fn is None and not t.requires_grad
    np.testing.assert_array_equal(t.data, [[3.0, 0.0], [1.0, 2.0]])


def test_an_output_buffer_created_with_requires_grad_still_works():
    weight = Tensor(np.zeros(3), requires_grad=True)
    weight[0] = 1.5  # initialisation by a constant is a plain write
    assert weight.data[0] == 1.5 and weight.is_leaf
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    output = Tensor(np.zeros(2), requires_grad=True)
    for i in range(2):
        output[i] = x[i] * x[i]
    output.sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])


def test_getitem_with_tensor_index():
    x = Tensor(np.arange(5.0), requires_grad=True)
    idx = Tensor(np.array([4, 4, 0]))
    x[idx].sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 0, 0, 0, 2])


def test_deep_graph_has_no_recursion_limit():
    nodes = 100_000
    assert nodes > sys.getrecursionlimit() * 10
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(nodes):
        y = y + x
    y.backward(np.array([1.0]))
    assert x.grad[0] == nodes + 1


def test_many_scalar_writes_into_one_output():
    n = 5_000
    x = Tensor(np.arange(n, dtype=np.float64), requires_grad=True)
    out = Tensor(shape=(n,))
    for i in range(n):
        out[i] = x[i] * 3.0
    out.backward(np.ones(n))
    np.testing.assert_array_equal(x.grad, np.full(n, 3.0))


def test_repeated_scalar_writes_keep_only_the_last():
    x = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    out = Tensor(shape=(2, 2))
    out[0, 0] = x[0] * 1.0
    out[1, 1] = x[1] * 1.0
    out[0, 0] = x[2] * 1.0
    out[0, 1] = 5.0
    np.testing.assert_array_equal(out.data, [[3.0, 5.0], [0.0, 2.0]])
    out.backward(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_array_equal(x.grad, [0.0, 4.0, 1.0])
