"""Activation layers: ReLU, Sigmoid, Tanh, GELU, Softmax."""

import numpy as np

from . import autograd
from .autograd import Function
from .backward_functions import GELUBackward, gelu_values
from .layers import Module
from .tensor import Tensor, _new


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


class ReLU(Module):
    """max(x, 0), elementwise."""

    def forward(self, x):
        return _as_tensor(x).relu()


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise, without overflow."""

    def forward(self, x):
        return _as_tensor(x).sigmoid()


class Tanh(Module):
    def forward(self, x):
        return _as_tensor(x).tanh()


class GELU(Module):
    """x * Phi(x) by its tanh approximation (the course's), elementwise."""

    def forward(self, x):
        x = _as_tensor(x)
        out = gelu_values(x.data).astype(x.data.dtype, copy=False)
        if autograd._grad_mode.enabled and x.requires_grad:
            return _new(out, True, GELUBackward(x))
        return _new(out)


class SoftmaxFunction(Function):
    def __init__(self, x, out, axis):
        super().__init__(x)
        self.out, self.axis = out, axis

    def apply(self, grad_output):
        s = self.out
        return (s * (grad_output - (grad_output * s).sum(axis=self.axis, keepdims=True)),)


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along `axis`, computed stably."""
    x = _as_tensor(x)
    shifted = x.data - x.data.max(axis=axis, keepdims=True)
    out = np.exp(shifted)
    out /= out.sum(axis=axis, keepdims=True)
    if autograd._grad_mode.enabled and x.requires_grad:
        return _new(out, True, SoftmaxFunction(x, out, axis))
    return _new(out)


class Softmax(Module):
    """Softmax along `dim` (default: the last axis)."""

    def __init__(self, dim=-1):
        self.dim = dim

    def forward(self, x, dim=None):
        return softmax(x, self.dim if dim is None else dim)
