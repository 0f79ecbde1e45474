"""The course's named backward functions, with the course's constructor signatures (re-exported by autograd).

Student files build them by hand, e.g. `result._grad_fn = ReLUBackward(x)` (one input) or
`SigmoidBackward(x, result)`, and their `apply(grad_output)` returns one gradient (or None) per saved
tensor, as the engine expects. The kit's own operations record the faster functions in `tensor.py`;
these are for student code, so they favour the course's exact behaviour over speed.
"""

import numpy as np

from .autograd import Function, _TensorBase

EPSILON = 1e-7  # keeps log() and divisions away from zero (the course's constant)


def _needs_grad(value):
    return isinstance(value, _TensorBase) and value.requires_grad


def _data(value):
    return value.data if isinstance(value, _TensorBase) else value


class AddBackward(Function):
    """z = a + b: both inputs receive grad_output (the engine sums it over broadcast axes)."""

    def apply(self, grad_output):
        a, b = self.saved_tensors
        return (grad_output if _needs_grad(a) else None, grad_output if _needs_grad(b) else None)


class SubBackward(Function):
    """z = a - b."""

    def apply(self, grad_output):
        a, b = self.saved_tensors
        return (grad_output if _needs_grad(a) else None, -grad_output if _needs_grad(b) else None)


class MulBackward(Function):
    """z = a * b: each input receives grad_output times the other input."""

    def apply(self, grad_output):
        a, b = self.saved_tensors
        grad_a = grad_output * _data(b) if _needs_grad(a) else None
        grad_b = grad_output * _data(a) if _needs_grad(b) else None
        return grad_a, grad_b


class DivBackward(Function):
    """z = a / b."""

    def apply(self, grad_output):
        a, b = self.saved_tensors
        grad_a = grad_output / _data(b) if _needs_grad(a) else None
        grad_b = -grad_output * _data(a) / (_data(b) ** 2) if _needs_grad(b) else None
        return grad_a, grad_b


class MatmulBackward(Function):
    """z = a @ b, batched over leading axes."""

    def apply(self, grad_output):
        a, b = self.saved_tensors
        a_data, b_data = _data(a), _data(b)
        grad_a = grad_b = None
        if _needs_grad(a):
            grad_a = np.matmul(grad_output, np.swapaxes(b_data, -2, -1) if b_data.ndim >= 2 else b_data.T)
        if _needs_grad(b):
            grad_b = np.matmul(np.swapaxes(a_data, -2, -1) if a_data.ndim >= 2 else a_data.T, grad_output)
        return grad_a, grad_b


class TransposeBackward(Function):
    """Transpose of two axes (the last two when dim0 and dim1 are None)."""

    def __init__(self, tensor, dim0, dim1):
        super().__init__(tensor)
        self.dim0, self.dim1 = dim0, dim1

    def apply(self, grad_output):
        if not _needs_grad(self.saved_tensors[0]):
            return (None,)
        if grad_output.ndim < 2:
            return (grad_output.copy(),)
        axes = list(range(grad_output.ndim))
        first, second = (-2, -1) if self.dim0 is None and self.dim1 is None else (self.dim0, self.dim1)
        axes[first], axes[second] = axes[second], axes[first]
        return (np.transpose(grad_output, axes),)


class PermuteBackward(Function):
    """Any axis permutation: the gradient is permuted back by the inverse permutation."""

    def __init__(self, tensor, axes):
        super().__init__(tensor)
        self.axes = tuple(axes)
        self.inverse_axes = tuple(int(i) for i in np.argsort(self.axes))

    def apply(self, grad_output):
        if not _needs_grad(self.saved_tensors[0]):
            return (None,)
        return (np.transpose(grad_output, self.inverse_axes),)


class EmbeddingBackward(Function):
    """Rows of `weight` looked up by `indices`: gradients are scattered back with np.add.at."""

    def __init__(self, weight, indices):
        super().__init__(weight)
        self.indices = indices

    def apply(self, grad_output):
        weight = self.saved_tensors[0]
        if not _needs_grad(weight):
            return (None,)
        gradient = np.zeros_like(weight.data)
        rows = np.asarray(_data(self.indices)).astype(int).reshape(-1)
        np.add.at(gradient, rows, grad_output.reshape(-1, grad_output.shape[-1]))
        return (gradient,)


class SliceBackward(Function):
    """x[key]: the gradient goes back to the selected positions, zeros elsewhere."""

    def __init__(self, tensor, key):
        super().__init__(tensor)
        self.key = key
        self.original_shape = tensor.shape

    def apply(self, grad_output):
        if not _needs_grad(self.saved_tensors[0]):
            return (None,)
        gradient = np.zeros(self.original_shape, dtype=np.result_type(grad_output, np.float32))
        np.add.at(gradient, self.key, grad_output)
        return (gradient,)


class ReshapeBackward(Function):
    """Reshape: the gradient is reshaped back to `original_shape`."""

    def __init__(self, tensor, original_shape):
        super().__init__(tensor)
        self.original_shape = tuple(original_shape)

    def apply(self, grad_output):
        if not _needs_grad(self.saved_tensors[0]):
            return (None,)
        return (np.reshape(grad_output, self.original_shape),)


class SumBackward(Function):
    """Sum: the gradient is broadcast back to the input's shape."""

    def apply(self, grad_output):
        tensor = self.saved_tensors[0]
        if not _needs_grad(tensor):
            return (None,)
        return (np.ones_like(tensor.data) * grad_output,)


class ReLUBackward(Function):
    """max(x, 0), built from the input alone: `ReLUBackward(x)`."""

    def __init__(self, input_tensor):
        super().__init__(input_tensor)

    def apply(self, grad_output):
        tensor = self.saved_tensors[0]
        if not _needs_grad(tensor):
            return (None,)
        return (grad_output * (tensor.data > 0),)


class SigmoidBackward(Function):
    """sigmoid(x), built from input and output: `SigmoidBackward(x, result)`."""

    def __init__(self, input_tensor, output_tensor):
        super().__init__(input_tensor)
        self.output_data = _data(output_tensor)

    def apply(self, grad_output):
        if not _needs_grad(self.saved_tensors[0]):
            return (None,)
        return (grad_output * self.output_data * (1 - self.output_data),)


class SoftmaxBackward(Function):
    """softmax(x) along `dim`, built from input and output."""

    def __init__(self, input_tensor, output_tensor, dim=-1):
        super().__init__(input_tensor)
        self.output_data = _data(output_tensor)
        self.dim = dim

    def apply(self, grad_output):
        if not _needs_grad(self.saved_tensors[0]):
            return (None,)
        inner = np.sum(grad_output * self.output_data, axis=self.dim, keepdims=True)
        return (self.output_data * (grad_output - inner),)


_GELU_SCALE = np.sqrt(2.0 / np.pi)


def gelu_values(x):
    """GELU by its tanh approximation, the form whose derivative GELUBackward uses."""
    return 0.5 * x * (1 + np.tanh(_GELU_SCALE * (x + 0.044715 * x ** 3)))


class GELUBackward(Function):
    """GELU (tanh approximation), built from the input alone."""

    def __init__(self, input_tensor):
        super().__init__(input_tensor)

    def apply(self, grad_output):
        tensor = self.saved_tensors[0]
        if not _needs_grad(tensor):
            return (None,)
        x = tensor.data
        inner = np.tanh(_GELU_SCALE * (x + 0.044715 * x ** 3))
        slope = 0.5 * (1 + inner) + 0.5 * x * (1 - inner ** 2) * _GELU_SCALE * (1 + 3 * 0.044715 * x ** 2)
        return (grad_output * slope,)


class _MeanLossBackward(Function):
    """A loss averaged over every element of `targets`, differentiated with respect to the predictions only."""

    def __init__(self, predictions, targets):
        super().__init__(predictions)
        self.targets_data = np.asarray(_data(targets))
        self.num_samples = np.size(self.targets_data)

    def apply(self, grad_output):
        predictions = self.saved_tensors[0]
        if not _needs_grad(predictions):
            return (None,)
        return (self.gradient(predictions.data) * grad_output,)


class MSEBackward(_MeanLossBackward):
    """mean((predictions - targets) ** 2) with respect to the predictions."""

    def gradient(self, predictions):
        return 2.0 * (predictions - self.targets_data) / self.num_samples


class BCEBackward(_MeanLossBackward):
    """Binary cross-entropy on probabilities, with respect to the probabilities."""

    def gradient(self, predictions):
        p = np.clip(predictions, EPSILON, 1 - EPSILON)
        return (p - self.targets_data) / (p * (1 - p) * self.num_samples)


class CrossEntropyBackward(Function):
    """Mean cross-entropy of softmax(logits) against integer labels: (softmax - one_hot) / N."""

    def __init__(self, logits, targets):
        super().__init__(logits)
        self.targets_data = np.asarray(_data(targets)).astype(int).reshape(-1)
        self.batch_size, self.num_classes = logits.data.shape

    def apply(self, grad_output):
        logits = self.saved_tensors[0]
        if not _needs_grad(logits):
            return (None,)
        shifted = np.exp(logits.data - logits.data.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        probabilities[np.arange(self.batch_size), self.targets_data] -= 1.0
        return (probabilities / self.batch_size * grad_output,)


__all__ = ["EPSILON", "AddBackward", "MulBackward", "SubBackward", "DivBackward", "MatmulBackward",
           "TransposeBackward", "PermuteBackward", "EmbeddingBackward", "SliceBackward", "ReshapeBackward",
           "SumBackward", "ReLUBackward", "SigmoidBackward", "SoftmaxBackward", "GELUBackward", "MSEBackward",
           "BCEBackward", "CrossEntropyBackward"]
