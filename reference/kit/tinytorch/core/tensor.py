"""The course's `Tensor`: an ndarray plus the autograd graph that produced it.

    >>> x = Tensor([[1.0, 2.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([[2., 4.]], dtype=float32)

Data conventions: Python numbers and lists become float32; an ndarray keeps its dtype and is not
copied (so `Tensor(array)` is cheap). `Tensor(shape=(2, 3))` is a float32 array of zeros that may be
filled with `t[index] = value`; those writes are recorded, so gradients flow back through them.
If such a zeros tensor is first filled with float64 values it becomes float64 itself, so a
loop-style layer keeps the precision of its inputs.
"""

import gc
import numbers

import numpy as np

from . import autograd
from ._parallel import elementwise
from .autograd import Function, _TensorBase, run_backward

# A loop-style layer allocates several small objects per output element; with the default
# threshold (700) the cyclic collector rescans the growing graph so often that it costs ~40% of
# the forward pass. Refcounting frees the graph anyway (it has no cycles), so collect less often.
_GC_FIRST_GENERATION_THRESHOLD = 20000
if 0 < gc.get_threshold()[0] < _GC_FIRST_GENERATION_THRESHOLD:
    gc.set_threshold(_GC_FIRST_GENERATION_THRESHOLD, *gc.get_threshold()[1:])

_BASIC_INDEX_TYPES = (int, np.integer, slice, type(None), type(Ellipsis))


def _is_basic_index(index):
    if isinstance(index, tuple):
        return all(isinstance(i, _BASIC_INDEX_TYPES) and not isinstance(i, (bool, np.bool_)) for i in index)
    return isinstance(index, _BASIC_INDEX_TYPES) and not isinstance(index, (bool, np.bool_))


def _plain_index(index):
    """Replace Tensors inside an index by their arrays (integer-valued float tensors become integers)."""
    if isinstance(index, Tensor):
        return _index_array(index.data)
    if isinstance(index, tuple) and any(isinstance(i, Tensor) for i in index):
        return tuple(_index_array(i.data) if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray([i.data if isinstance(i, Tensor) else i for i in index])
    return index


def _index_array(array):
    return array.astype(np.int64) if array.dtype.kind == "f" else array


def _new(data, requires_grad=False, grad_fn=None):
    """Fast internal constructor: `data` is used as is (made an ndarray if it is a NumPy scalar)."""
    tensor = Tensor.__new__(Tensor)
    if type(data) is not np.ndarray:
        data = np.asarray(data)
    tensor.data = data
    tensor.grad = None
    tensor._requires_grad = requires_grad
    tensor._grad_fn = grad_fn
    tensor._read = False
    tensor._flexible_dtype = False
    return tensor


def _result(data, function_class, inputs, *extra):
    """Wrap an op's output; record `function_class(*inputs, *extra)` if any input needs a gradient."""
    if autograd._grad_mode.enabled:
        for t in inputs:
            if t._requires_grad or t._grad_fn is not None:
                return _new(data, True, function_class(*inputs, *extra))
    return _new(data)


class Tensor(_TensorBase):
    """An n-dimensional array with automatic differentiation.

    Args:
        data: array-like values (an ndarray is used without copying).
        requires_grad: whether `backward()` should fill `.grad` for this tensor.
        shape: instead of data, make a tensor of zeros of this shape.
        dtype: NumPy dtype to convert the data to.
    """

    __array_priority__ = 1000  # so `ndarray * Tensor` calls Tensor.__rmul__
    # Slots keep loop-style graphs (hundreds of thousands of tensors) small; __dict__ still lets
    # student code attach its own attributes.
    __slots__ = ("data", "grad", "_requires_grad", "_grad_fn", "_read", "_flexible_dtype", "__dict__", "__weakref__")

    def __init__(self, data=None, requires_grad=False, *, shape=None, dtype=None):
        flexible = False
        if data is None:
            if shape is None:
                raise ValueError("Tensor needs data or shape=, e.g. Tensor([1.0, 2.0]) or Tensor(shape=(2, 3))")
            if isinstance(shape, numbers.Integral):
                shape = (int(shape),)
            flexible = dtype is None
            array = np.zeros(tuple(shape), dtype=np.float32 if dtype is None else dtype)
        else:
            if isinstance(data, Tensor):
                data = data.data
            array = np.asarray(data, dtype=dtype)
            if dtype is None and not isinstance(data, (np.ndarray, np.generic)) and array.dtype.kind in "iuf":
                array = array.astype(np.float32)
            if shape is not None and tuple(array.shape) != tuple(shape):
                array = array.reshape(shape)
        self.data = array
        self.grad = None
        self._requires_grad = bool(requires_grad)
        self._grad_fn = None
        self._read = False
        self._flexible_dtype = flexible

    @property
    def requires_grad(self):
        return self._requires_grad or self._grad_fn is not None

    @requires_grad.setter
    def requires_grad(self, value):
        self._requires_grad = bool(value)

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def T(self):
        return self.transpose()

    @property
    def is_leaf(self):
        return self._grad_fn is None

    def __len__(self):
        return len(self.data)

    def __repr__(self):
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({body}, dtype={self.data.dtype}{extra})"

    def __array__(self, dtype=None, copy=None):
        if dtype is not None and dtype != self.data.dtype:
            return self.data.astype(dtype)
        if copy:
            return self.data.copy()
        return self.data

    def __bool__(self):
        return bool(self.data)

    def __float__(self):
        return float(self.data)

    def __int__(self):
        return int(self.data)

    def numpy(self):
        """The underlying ndarray (not a copy)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        """A tensor sharing the data, outside the graph."""
        return _new(self.data)

    def clone(self):
        return _result(self.data.copy(), IdentityBackward, (self,))

    copy = clone

    def astype(self, dtype):
        return _result(self.data.astype(dtype), CastBackward, (self,))

    def float(self):
        return self.astype(np.float32)

    def zero_grad(self):
        self.grad = None

    def backward(self, gradient=None):
        """Accumulate d(self)/d(leaf) * gradient into `.grad` of every leaf that requires grad.

        Args:
            gradient: gradient of the final objective with respect to this tensor (same shape);
                may be omitted for a one-element tensor (then 1).
        """
        if not self.requires_grad:
            return
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor; this one has shape "
                                   f"{self.data.shape}: call backward(np.ones_like(t.data)) or reduce it with .sum()")
            gradient = np.ones_like(self.data)
        else:
            if isinstance(gradient, Tensor):
                gradient = gradient.data
            gradient = np.asarray(gradient)
            if gradient.shape != self.data.shape:
                gradient = np.broadcast_to(gradient, self.data.shape)
            if gradient.dtype != self.data.dtype and self.data.dtype.kind == "f":
                gradient = gradient.astype(self.data.dtype)
        run_backward(self, gradient)

    def _operand(self, other):
        """`other` as a Tensor; Python and NumPy scalars take this tensor's float dtype."""
        if isinstance(other, Tensor):
            return other
        if self.data.dtype.kind == "f" and (isinstance(other, (numbers.Number, np.generic))
                                           or (isinstance(other, np.ndarray) and other.ndim == 0)):
            return _new(np.asarray(other, dtype=self.data.dtype))
        return _new(np.asarray(other))

    def __add__(self, other):
        other = self._operand(other)
        return _result(self.data + other.data, AddBackward, (self, other))

    def __radd__(self, other):
        other = self._operand(other)
        return _result(other.data + self.data, AddBackward, (other, self))

    def __sub__(self, other):
        other = self._operand(other)
        return _result(self.data - other.data, SubBackward, (self, other))

    def __rsub__(self, other):
        other = self._operand(other)
        return _result(other.data - self.data, SubBackward, (other, self))

    def __mul__(self, other):
        other = self._operand(other)
        return _result(self.data * other.data, MulBackward, (self, other))

    def __rmul__(self, other):
        other = self._operand(other)
        return _result(other.data * self.data, MulBackward, (other, self))

    def __truediv__(self, other):
        other = self._operand(other)
        return _result(self.data / other.data, DivBackward, (self, other))

    def __rtruediv__(self, other):
        other = self._operand(other)
        return _result(other.data / self.data, DivBackward, (other, self))

    def __neg__(self):
        return _result(-self.data, NegBackward, (self,))

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor):
            return (self.log() * exponent).exp()
        if self.data.dtype.kind == "f":
            exponent = np.asarray(exponent, dtype=self.data.dtype)[()]
        return _result(self.data ** exponent, PowBackward, (self,), exponent)

    def __rpow__(self, base):
        return (self * float(np.log(base))).exp()

    def __matmul__(self, other):
        other = other if isinstance(other, Tensor) else _new(np.asarray(other))
        return _result(np.matmul(self.data, other.data), MatMulBackward, (self, other))

    def __rmatmul__(self, other):
        other = _new(np.asarray(other))
        return _result(np.matmul(other.data, self.data), MatMulBackward, (other, self))

    def matmul(self, other):
        return self.__matmul__(other)

    def dot(self, other):
        return self.__matmul__(other)

    def add(self, other):
        return self.__add__(other)

    def sub(self, other):
        return self.__sub__(other)

    def mul(self, other):
        return self.__mul__(other)

    def div(self, other):
        return self.__truediv__(other)

    # Comparisons give boolean tensors without gradient, elementwise as in NumPy; hashing stays by
    # identity so that tensors can be kept in sets and dict keys.
    def __eq__(self, other):
        return _new(self.data == _plain(other))

    def __ne__(self, other):
        return _new(self.data != _plain(other))

    def __gt__(self, other):
        return _new(self.data > _plain(other))

    def __ge__(self, other):
        return _new(self.data >= _plain(other))

    def __lt__(self, other):
        return _new(self.data < _plain(other))

    def __le__(self, other):
        return _new(self.data <= _plain(other))

    __hash__ = object.__hash__

    def exp(self):
        out = np.exp(self.data)
        return _result(out, ExpBackward, (self,), out)

    def log(self):
        return _result(np.log(self.data), LogBackward, (self,))

    def sqrt(self):
        out = np.sqrt(self.data)
        return _result(out, SqrtBackward, (self,), out)

    def abs(self):
        return _result(np.abs(self.data), AbsBackward, (self,))

    def relu(self):
        out = elementwise(np.maximum, np.empty_like(self.data), self.data, 0)
        return _result(out, ReLUBackward, (self,), out)

    def sigmoid(self):
        out = _sigmoid(self.data)
        return _result(out, SigmoidBackward, (self,), out)

    def tanh(self):
        out = np.tanh(self.data)
        return _result(out, TanhBackward, (self,), out)

    def clip(self, low=None, high=None):
        return _result(np.clip(self.data, low, high), ClipBackward, (self,), low, high)

    def maximum(self, other):
        other = self._operand(other)
        return _result(np.maximum(self.data, other.data), MaximumBackward, (self, other))

    def sum(self, axis=None, keepdims=False):
        return _result(np.sum(self.data, axis=axis, keepdims=keepdims), SumBackward, (self,), axis, keepdims)

    def mean(self, axis=None, keepdims=False):
        return _result(np.mean(self.data, axis=axis, keepdims=keepdims), MeanBackward, (self,), axis, keepdims)

    def max(self, axis=None, keepdims=False):
        return _result(np.max(self.data, axis=axis, keepdims=keepdims), MaxBackward, (self,), axis, keepdims, np.argmax)

    def min(self, axis=None, keepdims=False):
        return _result(np.min(self.data, axis=axis, keepdims=keepdims), MaxBackward, (self,), axis, keepdims, np.argmin)

    def argmax(self, axis=None):
        return _new(np.argmax(self.data, axis=axis))

    def argmin(self, axis=None):
        return _new(np.argmin(self.data, axis=axis))

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return _result(self.data.reshape(shape), ReshapeBackward, (self,))

    view = reshape

    def flatten(self, start_dim=0):
        shape = self.data.shape[:start_dim] + (-1,)
        return self.reshape(shape)

    def transpose(self, *axes):
        """No arguments: swap the last two axes. Two axes: swap them. A full permutation: permute."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        ndim = self.data.ndim
        if not axes:
            permutation = list(range(ndim))
            if ndim >= 2:
                permutation[-2], permutation[-1] = permutation[-1], permutation[-2]
        elif len(axes) == 2:
            permutation = list(range(ndim))
            a, b = axes[0] % ndim, axes[1] % ndim
            permutation[a], permutation[b] = permutation[b], permutation[a]
        else:
            permutation = [a % ndim for a in axes]
        return self.permute(*permutation)

    def permute(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return _result(self.data.transpose(axes), PermuteBackward, (self,), tuple(axes))

    def squeeze(self, axis=None):
        return _result(np.squeeze(self.data, axis=axis), ReshapeBackward, (self,))

    def unsqueeze(self, axis):
        return _result(np.expand_dims(self.data, axis), ReshapeBackward, (self,))

    def __getitem__(self, index):
        index = _plain_index(index)
        return _result(self.data[index], GetItemBackward, (self,), index)

    def __setitem__(self, index, value):
        """Write `value` into the selected elements; the write is recorded for backward."""
        index = _plain_index(index)
        source = value if isinstance(value, Tensor) else None
        values = value.data if source is not None else value
        if self._read:
            # Someone already used the current contents: give them their own copy (copy-on-write).
            self.data = self.data.copy()
            self._read = False
            starts_new_version = True
        else:
            starts_new_version = False
        if self._flexible_dtype:
            self._flexible_dtype = False
            value_dtype = getattr(values, "dtype", None)
            if value_dtype is not None and value_dtype.kind == "f" and value_dtype.itemsize > self.data.dtype.itemsize:
                self.data = self.data.astype(value_dtype)
        tracks = autograd._grad_mode.enabled and (
            (source is not None and source.requires_grad) or self._grad_fn is not None)
        if not tracks:
            self.data[index] = values
            return
        # Writing graph values into a leaf that requires grad (PyTorch refuses) turns it into an output
        # buffer: students often create `output = Tensor(np.zeros(...), requires_grad=True)` and fill it.
        function = self._grad_fn
        if function.__class__ is not SetItemBackward or starts_new_version or function.closed:
            function = SetItemBackward(self, function)
            self._grad_fn = function
        self.data[index] = values
        function.record(index, source if source is not None and source.requires_grad else None)


def _plain(value):
    return value.data if isinstance(value, Tensor) else value


def _sigmoid(x):
    # exp of a non-positive argument only, so no overflow warnings for large |x|
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


class IdentityBackward(Function):
    def apply(self, grad_output):
        return (grad_output,)


class CastBackward(Function):
    def apply(self, grad_output):
        return (grad_output.astype(self.saved_tensors[0].data.dtype),)


class AddBackward(Function):
    def apply(self, grad_output):
        return grad_output, grad_output


class SubBackward(Function):
    def apply(self, grad_output):
        return grad_output, -grad_output


class MulBackward(Function):
    def apply(self, grad_output):
        a, b = self.saved_tensors
        return (grad_output * b.data if a.requires_grad else None,
                grad_output * a.data if b.requires_grad else None)


class DivBackward(Function):
    def apply(self, grad_output):
        a, b = self.saved_tensors
        grad_a = grad_output / b.data
        grad_b = -grad_a * a.data / b.data if b.requires_grad else None
        return (grad_a if a.requires_grad else None), grad_b


class NegBackward(Function):
    def apply(self, grad_output):
        return (-grad_output,)


class PowBackward(Function):
    def __init__(self, x, exponent):
        super().__init__(x)
        self.exponent = exponent

    def apply(self, grad_output):
        x = self.saved_tensors[0].data
        return (grad_output * self.exponent * x ** (self.exponent - 1),)


class MatMulBackward(Function):
    def apply(self, grad_output):
        a_tensor, b_tensor = self.saved_tensors
        a, b = a_tensor.data, b_tensor.data
        g = grad_output
        if a.ndim == 1 and b.ndim == 1:
            return (g * b if a_tensor.requires_grad else None), (g * a if b_tensor.requires_grad else None)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        grad_a = grad_b = None
        if a_tensor.requires_grad:
            grad_a = np.matmul(g, np.swapaxes(b2, -1, -2))
            if a.ndim == 1:
                grad_a = grad_a.reshape(-1, a.shape[0]).sum(axis=0)
        if b_tensor.requires_grad:
            if a2.ndim > 2 and b2.ndim == 2:
                # (..., n, k) @ (k, m): fold the batch dimensions into one matrix product
                grad_b = a2.reshape(-1, a2.shape[-1]).T @ g.reshape(-1, g.shape[-1])
            else:
                grad_b = np.matmul(np.swapaxes(a2, -1, -2), g)
            if b.ndim == 1:
                grad_b = grad_b.reshape(-1, b.shape[0]).sum(axis=0) if grad_b.ndim > 1 else grad_b
        return grad_a, grad_b


class ExpBackward(Function):
    def __init__(self, x, out):
        super().__init__(x)
        self.out = out

    def apply(self, grad_output):
        return (grad_output * self.out,)


class LogBackward(Function):
    def apply(self, grad_output):
        return (grad_output / self.saved_tensors[0].data,)


class SqrtBackward(Function):
    def __init__(self, x, out):
        super().__init__(x)
        self.out = out

    def apply(self, grad_output):
        return (grad_output / (2 * self.out),)


class AbsBackward(Function):
    def apply(self, grad_output):
        return (grad_output * np.sign(self.saved_tensors[0].data),)


class ReLUBackward(Function):
    def __init__(self, x, out):
        super().__init__(x)
        self.out = out

    def apply(self, grad_output):
        grad_output = np.asarray(grad_output)
        if grad_output.shape != self.out.shape:
            return (grad_output * (self.out > 0),)
        return (elementwise(_relu_gradient, np.empty_like(grad_output), grad_output, self.out),)


def _relu_gradient(grad_output, out_of_relu, out):
    # The mask goes straight into the float output and the product is float by float: with a boolean operand NumPy
    # casts it buffer by buffer inside the product, which costs about as much as the extra pass (relu2's gradient
    # for half a batch, 4 MB: 0.86 -> 0.77 ms; relu1's 8 MB: even). Same values, bit for bit (grad * 1.0 or 0.0).
    np.greater(out_of_relu, 0, out=out, casting="unsafe")
    return np.multiply(out, grad_output, out=out)


class SigmoidBackward(Function):
    def __init__(self, x, out):
        super().__init__(x)
        self.out = out

    def apply(self, grad_output):
        return (grad_output * self.out * (1 - self.out),)


class TanhBackward(Function):
    def __init__(self, x, out):
        super().__init__(x)
        self.out = out

    def apply(self, grad_output):
        return (grad_output * (1 - self.out * self.out),)


class ClipBackward(Function):
    def __init__(self, x, low, high):
        super().__init__(x)
        self.low, self.high = low, high

    def apply(self, grad_output):
        x = self.saved_tensors[0].data
        inside = np.ones(x.shape, dtype=bool)
        if self.low is not None:
            inside &= x >= self.low
        if self.high is not None:
            inside &= x <= self.high
        return (grad_output * inside,)


class MaximumBackward(Function):
    def apply(self, grad_output):
        a, b = self.saved_tensors
        a_wins = a.data >= b.data
        return grad_output * a_wins, grad_output * ~a_wins


def _expand_reduced(grad_output, shape, axis, keepdims):
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        grad_output = np.expand_dims(grad_output, tuple(a % len(shape) for a in axes))
    full = np.empty(shape, dtype=grad_output.dtype)
    full[...] = grad_output
    return full


class SumBackward(Function):
    def __init__(self, x, axis, keepdims):
        super().__init__(x)
        self.axis, self.keepdims = axis, keepdims

    def apply(self, grad_output):
        return (_expand_reduced(np.asarray(grad_output), self.saved_tensors[0].data.shape, self.axis, self.keepdims),)


class MeanBackward(Function):
    def __init__(self, x, axis, keepdims):
        super().__init__(x)
        self.axis, self.keepdims = axis, keepdims

    def apply(self, grad_output):
        x = self.saved_tensors[0].data
        grad_output = np.asarray(grad_output)
        count = x.size // max(grad_output.size, 1)
        grad = _expand_reduced(grad_output, x.shape, self.axis, self.keepdims)
        grad /= count
        return (grad,)


class MaxBackward(Function):
    """Gradient of max/min goes to the FIRST extreme element in row-major order (PyTorch's pooling rule)."""

    def __init__(self, x, axis, keepdims, arg_function):
        super().__init__(x)
        self.axis, self.keepdims, self.arg_function = axis, keepdims, arg_function

    def apply(self, grad_output):
        x = self.saved_tensors[0].data
        grad_output = np.asarray(grad_output)
        grad = np.zeros(x.shape, dtype=grad_output.dtype if grad_output.dtype.kind == "f" else x.dtype)
        if self.axis is None:
            grad.flat[self.arg_function(x)] = grad_output.reshape(())
            return (grad,)
        axes = (self.axis,) if isinstance(self.axis, numbers.Integral) else tuple(self.axis)
        axes = tuple(a % x.ndim for a in axes)
        kept = [a for a in range(x.ndim) if a not in axes]
        moved = x.transpose(kept + list(axes))
        lead_shape = moved.shape[:len(kept)]
        flat = moved.reshape(lead_shape + (-1,))
        winner = self.arg_function(flat, axis=-1)
        grad_flat = np.zeros(flat.shape, dtype=grad.dtype)
        np.put_along_axis(grad_flat, winner[..., None], np.reshape(grad_output, lead_shape)[..., None], axis=-1)
        grad_moved = grad_flat.reshape(moved.shape)
        inverse = np.argsort(kept + list(axes))
        return (grad_moved.transpose(inverse),)


class ReshapeBackward(Function):
    def apply(self, grad_output):
        return (np.reshape(grad_output, self.saved_tensors[0].data.shape),)


class PermuteBackward(Function):
    def __init__(self, x, axes):
        super().__init__(x)
        self.axes = axes

    def apply(self, grad_output):
        return (np.transpose(grad_output, np.argsort(self.axes)),)


class GetItemBackward(Function):
    """x[index]: the engine adds the gradient straight into x's gradient buffer (`accumulate`)."""

    def __init__(self, x, index):
        super().__init__(x)
        self.index = index
        self.basic = _is_basic_index(index)

    def accumulate(self, buffer, grad_output):
        if self.basic:
            buffer[self.index] += grad_output
        else:
            np.add.at(buffer, self.index, grad_output)

    def apply(self, grad_output):
        x = self.saved_tensors[0].data
        grad = np.zeros(x.shape, dtype=x.dtype)
        self.accumulate(grad, grad_output)
        return (grad,)


class SetItemBackward(Function):
    """Writes `t[index] = value` into one version of a tensor.

    saved_tensors[0] stands for the tensor's previous version (None when it was a constant), then
    one entry per write (the written Tensor, or None for a constant). A later write wins where
    writes overlap, so each element's gradient goes to the last value written there.
    """

    def __init__(self, tensor, previous_fn):
        self.closed = False
        self.ndim = tensor.data.ndim
        self.all_scalar_writes = True  # every index names one element by integers (the loop style)
        if previous_fn is not None:
            previous = _new(tensor.data, True, previous_fn)
            self.saved_tensors = [previous]
            self._input_fns = [previous_fn]
        else:
            self.saved_tensors = [None]
            self._input_fns = [None]
        self.indices = []

    def record(self, index, source):
        if self.all_scalar_writes and not (type(index) is tuple and len(index) == self.ndim
                                           and all(type(i) is int or isinstance(i, np.integer) for i in index)):
            self.all_scalar_writes = False
        self.indices.append(index)
        self.saved_tensors.append(source)
        if source is None:
            self._input_fns.append(None)
        else:
            self._input_fns.append(source._grad_fn)
            source._read = True

    def apply(self, grad_output):
        self.closed = True
        sources = self.saved_tensors
        count = len(self.indices)
        if self.all_scalar_writes and count and self.ndim:
            return self._scalar_writes_gradients(grad_output)
        gradients = [None] * (count + 1)
        if count == 1 and sources[0] is None:
            if sources[1] is not None:
                gradients[1] = grad_output[self.indices[0]]
            return gradients
        covered = np.zeros(grad_output.shape, dtype=bool)
        for k in range(count - 1, -1, -1):
            index = self.indices[k]
            if sources[k + 1] is not None:
                grad = grad_output[index]
                hidden = covered[index]
                if hidden.any():
                    grad = np.where(hidden, 0, grad).astype(grad_output.dtype, copy=False)
                gradients[k + 1] = grad
            covered[index] = True
        if sources[0] is not None:
            gradients[0] = np.where(covered, 0, grad_output).astype(grad_output.dtype, copy=False)
        return gradients

    def _scalar_writes_gradients(self, grad_output):
        shape = grad_output.shape
        flat = np.ravel_multi_index(np.array(self.indices, dtype=np.int64).T, shape, mode="wrap")
        values = np.ascontiguousarray(grad_output).reshape(-1)[flat]
        counts = np.bincount(flat, minlength=grad_output.size)
        if counts.max(initial=0) > 1:
            # Several writes to one element: only the last one of each keeps its gradient.
            _, first_from_end = np.unique(flat[::-1], return_index=True)
            is_last = np.zeros(len(flat), dtype=bool)
            is_last[len(flat) - 1 - first_from_end] = True
            values = np.where(is_last, values, 0)
        gradients = [None]
        gradients.extend(values)
        if self.saved_tensors[0] is not None:
            gradients[0] = np.where(counts.reshape(shape) > 0, 0, grad_output).astype(grad_output.dtype, copy=False)
        return [g if s is not None else None for g, s in zip(gradients, self.saved_tensors)]


def zeros(*shape, dtype=np.float32, requires_grad=False):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Tensor(np.random.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def Parameter(data, requires_grad=True):  # noqa: N802 - named like the class it stands for
    """A tensor that requires grad: the usual way to make a layer's weight."""
    return Tensor(data, requires_grad=requires_grad)
