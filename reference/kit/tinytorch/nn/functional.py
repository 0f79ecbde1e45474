"""Function forms of the layers: relu, sigmoid, tanh, softmax, linear, cross_entropy."""

from ..core.activations import softmax
from ..core.layers import linear
from ..core.losses import cross_entropy
from ..core.tensor import Tensor


def relu(x):
    return (x if isinstance(x, Tensor) else Tensor(x)).relu()


def sigmoid(x):
    return (x if isinstance(x, Tensor) else Tensor(x)).sigmoid()


def tanh(x):
    return (x if isinstance(x, Tensor) else Tensor(x)).tanh()


__all__ = ["relu", "sigmoid", "tanh", "softmax", "linear", "cross_entropy"]
