"""Neural-network building blocks under PyTorch-style names (`tinytorch.nn.Linear`), re-exported from tinytorch.core.

`Module` is the course's `Layer`. Conv2d, MaxPool2d and AvgPool2d come from `tinytorch.core.spatial` (the
student's file) on first use, as at the top level.
"""

from ..core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from ..core.layers import Dense, Dropout, Layer, Linear, Module, Sequential
from ..core.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, MSELoss
from . import functional

F = functional
SPATIAL_NAMES = ("Conv2d", "MaxPool2d", "AvgPool2d")

__all__ = ["Module", "Layer", "Linear", "Dense", "Dropout", "Sequential", "ReLU", "Sigmoid", "Tanh", "GELU",
           "Softmax", "CrossEntropyLoss", "MSELoss", "BinaryCrossEntropyLoss", "functional", "F"]


def __getattr__(name):
    if name in SPATIAL_NAMES:
        import tinytorch

        return getattr(tinytorch, name)
    raise AttributeError(f"module 'tinytorch.nn' has no attribute {name!r}")
