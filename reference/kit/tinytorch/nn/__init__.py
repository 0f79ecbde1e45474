"""Neural-network building blocks under PyTorch-style names (`tinytorch.nn.Linear`), re-exported from tinytorch.core.

`Module` is the course's `Layer`. Conv2d, MaxPool2d and AvgPool2d (and the module text's Conv2D, MaxPool2D,
AvgPool2D, Flatten) come from `tinytorch.core.spatial` (the student's file) on first use, as at the top level.
"""

from ..core.activations import GELU, ReLU, Sigmoid, Softmax, Tanh
from ..core.layers import Dense, Dropout, Layer, Linear, Module, Sequential
from ..core.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, MSELoss
from . import functional

F = functional
SPATIAL_NAMES = ("Conv2d", "MaxPool2d", "AvgPool2d", "Conv2D", "MaxPool2D", "AvgPool2D", "Flatten")

__all__ = ["Module", "Layer", "Linear", "Dense", "Dropout", "Sequential", "ReLU", "Sigmoid", "Tanh", "GELU",
           "Softmax", "CrossEntropyLoss", "MSELoss", "BinaryCrossEntropyLoss", "functional", "F"]


def __getattr__(name):
    if name in SPATIAL_NAMES:
        import importlib

        try:
            spatial = importlib.import_module("tinytorch.core.spatial")
        except ImportError as error:
            raise AttributeError(f"tinytorch.nn.{name} comes from tinytorch.core.spatial (your spatial.py), "
                                 f"which is not loaded: {error}") from error
        return getattr(spatial, name)
    raise AttributeError(f"module 'tinytorch.nn' has no attribute {name!r}")
