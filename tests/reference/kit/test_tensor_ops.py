"""Gradients of the kit's Tensor operations against central finite differences (float64)."""

import numpy as np
import pytest

from tinytorch.core.tensor import Tensor


def numerical_gradient(function, arrays, index, upstream, eps=1e-6):
    """d(sum(function(*arrays) * upstream))/d(arrays[index]) by central differences."""
    target = arrays[index]
    grad = np.zeros_like(target)
    for position in np.ndindex(target.shape):
        saved = target[position]
        target[position] = saved + eps
        plus = np.sum(function(*arrays) * upstream)
        target[position] = saved - eps
        minus = np.sum(function(*arrays) * upstream)
        target[position] = saved
        grad[position] = (plus - minus) / (2 * eps)
    return grad


def check_gradients(op, *arrays, rng):
    """Compare Tensor autograd of `op` with finite differences for every input."""
    tensors = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = op(*tensors)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)

    def plain(*values):
        return op(*[Tensor(v) for v in values]).data

    for i, t in enumerate(tensors):
        expected = numerical_gradient(plain, [a.copy() for a in arrays], i, upstream)
        assert t.grad is not None, f"input {i} got no gradient"
        assert t.grad.shape == arrays[i].shape
        np.testing.assert_allclose(t.grad, expected, rtol=1e-5, atol=1e-7, err_msg=f"input {i}")


CASES = {
    "add_broadcast": (lambda a, b: a + b, [(3, 4), (4,)]),
    "sub_broadcast": (lambda a, b: a - b, [(2, 1, 4), (3, 1)]),
    "mul_broadcast": (lambda a, b: a * b, [(3, 4), (3, 1)]),
    "div": (lambda a, b: a / b, [(3, 4), (3, 4)]),
    "neg_and_scalars": (lambda a: 2.0 - (-a) * 3 + 1 / (a * a + 1), [(5,)]),
    "rsub_rdiv": (lambda a: 1.5 / (a * a + 2) - 4, [(2, 3)]),
    "pow": (lambda a: (a * a + 1) ** 1.5, [(4,)]),
    "matmul_2d": (lambda a, b: a @ b, [(3, 4), (4, 2)]),
    "matmul_batched_by_matrix": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "matmul_batched": (lambda a, b: a.matmul(b), [(2, 3, 4), (2, 4, 2)]),
    "matmul_vector": (lambda a, b: a @ b, [(3, 4), (4,)]),
    "matmul_vector_left": (lambda a, b: a @ b, [(4,), (4, 3)]),
    "reshape": (lambda a: a.reshape(6, 2) * a.reshape((6, 2)), [(3, 4)]),
    "transpose_default": (lambda a, b: a.transpose() @ b, [(3, 4), (3, 2)]),
    "transpose_swap": (lambda a: a.transpose(0, 2) * 1.0, [(2, 3, 4)]),
    "permute_full": (lambda a: a.transpose(2, 0, 1) * 2.0, [(2, 3, 4)]),
    "T": (lambda a: a.T * 1.0, [(2, 3)]),
    "sum_all": (lambda a: a.sum(), [(3, 4)]),
    "sum_axis": (lambda a: a.sum(axis=1), [(3, 4, 2)]),
    "sum_axes_keepdims": (lambda a: a.sum(axis=(0, 2), keepdims=True), [(3, 4, 2)]),
    "mean_all": (lambda a: a.mean(), [(3, 4)]),
    "mean_axis_keepdims": (lambda a: a.mean(axis=-1, keepdims=True), [(3, 4)]),
    "max_all": (lambda a: a.max(), [(3, 4)]),
    "max_axis": (lambda a: a.max(axis=0), [(3, 4)]),
    "max_axes_keepdims": (lambda a: a.max(axis=(1, 2), keepdims=True), [(2, 3, 4)]),
    "min_axis": (lambda a: a.min(axis=1), [(3, 4)]),
    "getitem_basic": (lambda a: a[1:, ::2] * 2.0, [(3, 5)]),
    "getitem_int_and_ellipsis": (lambda a: a[..., 1] + a[0], [(3, 3)]),
    "getitem_fancy_repeated": (lambda a: a[[0, 2, 0, 0]], [(3, 2)]),
    "getitem_bool_mask": (lambda a: a[np.array([True, False, True])], [(3, 2)]),
    "exp_log": (lambda a: (a * a + 1).log() + (a * 0.5).exp(), [(4,)]),
    "sqrt_abs": (lambda a: (a * a + 1).sqrt() + (a + 0.3).abs(), [(4,)]),
    "relu": (lambda a: a.relu(), [(10,)]),
    "sigmoid_tanh": (lambda a: a.sigmoid() * a.tanh(), [(6,)]),
    "reuse_same_tensor": (lambda a: a * a + a, [(3,)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_operation_gradient_matches_finite_differences(name, rng):
    op, shapes = CASES[name]
    arrays = [rng.standard_normal(shape) for shape in shapes]
    if name == "relu":
        arrays[0][np.abs(arrays[0]) < 1e-3] = 0.5  # keep away from the kink
    check_gradients(op, *arrays, rng=rng)


def test_max_gradient_goes_to_first_maximum():
    x = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad, [[0, 1, 0], [0, 0, 0]])
    y = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), requires_grad=True)
    y.max(axis=1).backward(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(y.grad, [[0, 1, 0], [10, 0, 0]])


def test_data_conventions():
    assert Tensor([1.0, 2.0]).dtype == np.float32
    assert Tensor(3).dtype == np.float32
    assert Tensor(np.ones(2)).dtype == np.float64
    assert Tensor(np.ones(2, dtype=np.float32), dtype=np.float64).dtype == np.float64
    array = np.ones(3, dtype=np.float32)
    assert Tensor(array).data is array
    zeros = Tensor(shape=(2, 3))
    assert zeros.shape == (2, 3) and zeros.dtype == np.float32 and not zeros.data.any()
    assert np.asarray(Tensor([1.0, 2.0])).tolist() == [1.0, 2.0]
    assert len(Tensor(np.zeros((4, 2)))) == 4
    assert Tensor([[2.5]]).item() == 2.5
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))


def test_scalars_keep_float32():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    for y in (x * 2.0, x * np.float64(2.0), 2.0 * x, np.float64(3.0) - x, x / 3, x ** 2, np.ones(3, dtype=np.float32) * x):
        assert isinstance(y, Tensor) and y.dtype == np.float32
    (x * np.float64(2.0)).sum().backward()
    assert x.grad.dtype == np.float32


def test_gradient_accumulates_across_backward_calls_and_zero_grad_resets():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_no_gradient_for_tensors_that_do_not_require_it():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_array_equal(x.grad, [3.0, 4.0])


def test_backward_without_gradient_needs_scalar():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()


def test_no_grad_records_nothing():
    from tinytorch.core.autograd import no_grad

    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2
    assert not y.requires_grad and y._grad_fn is None
    assert (x * 2).requires_grad


def test_custom_function_as_documented():
    from tinytorch.core.autograd import Function

    class ScaleAndShift(Function):
        def apply(self, grad_output):
            x, w, b = self.saved_tensors
            # a (1, D) bias gradient for a (D,) bias is accepted and reshaped by the engine
            return grad_output * w.data, (grad_output * x.data).sum(axis=0), grad_output.sum(axis=0, keepdims=True)

    x = Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    w = Tensor(np.array([2.0, -1.0]), requires_grad=True)
    b = Tensor(np.array([0.5, 0.5]), requires_grad=True)
    out = Tensor(x.data * w.data + b.data, requires_grad=True)
    out._grad_fn = ScaleAndShift(x, w, b)
    (out * out).sum().backward()
    g = 2 * out.data
    np.testing.assert_allclose(x.grad, g * w.data)
    np.testing.assert_allclose(w.grad, (g * x.data).sum(axis=0))
    np.testing.assert_allclose(b.grad, g.sum(axis=0))
    assert b.grad.shape == (2,)


def test_comparisons_are_elementwise_and_hashing_is_by_identity():
    a = Tensor(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal((a == 2.0).data, [False, True, False])
    np.testing.assert_array_equal((a != Tensor(np.array([1.0, 0.0, 3.0]))).data, [False, True, False])
    np.testing.assert_array_equal((a > 1.5).data, [False, True, True])
    assert len({a, Tensor(np.array([1.0, 2.0, 3.0]))}) == 2


def test_course_style_function_with_fewer_saved_tensors_than_gradients():
    """The course's Conv2dBackward registers (x, weight) when bias is None but still returns three gradients."""
    from tinytorch.core.autograd import Function

    class ScaleBackward(Function):
        def __init__(self, x, weight, bias):
            if bias is not None:
                super().__init__(x, weight, bias)
            else:
                super().__init__(x, weight)
            self.x, self.weight, self.bias = x, weight, bias

        def apply(self, grad_output):
            grad_bias = None if self.bias is None else Tensor(grad_output.sum(keepdims=True))
            return [grad_output * self.weight.data, Tensor((grad_output * self.x.data).sum(keepdims=True)), grad_bias]

    for with_bias in (False, True):
        x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
        w = Tensor(np.array([3.0]), requires_grad=True)
        b = Tensor(np.array([0.5]), requires_grad=True) if with_bias else None
        out = Tensor(x.data * w.data + (b.data if with_bias else 0), requires_grad=True)
        out._grad_fn = ScaleBackward(x, w, b)
        out.backward(np.array([1.0, 1.0]))
        np.testing.assert_array_equal(x.grad, [3.0, 3.0])
        np.testing.assert_array_equal(w.grad, [3.0])
        if with_bias:
            np.testing.assert_array_equal(b.grad, [2.0])


def test_tensor_created_with_grad_fn_but_without_requires_grad_still_propagates():
    from tinytorch.core.autograd import Function

    class Double(Function):
        def apply(self, grad_output):
            return (2 * grad_output,)

    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    out = Tensor(x.data * 2)  # the student forgot requires_grad=True
    out._grad_fn = Double(x)
    assert out.requires_grad
    (out * out).sum().backward()
    np.testing.assert_array_equal(x.grad, 2 * 2 * out.data)
