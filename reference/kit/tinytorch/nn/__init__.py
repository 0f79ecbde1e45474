"""Neural-network building blocks, re-exported from tinytorch.core."""

from ..core.activations import ReLU, Sigmoid, Softmax, Tanh
from ..core.layers import Dense, Linear, Module, Sequential
from ..core.losses import CrossEntropyLoss, MSELoss
from . import functional

__all__ = ["Module", "Linear", "Dense", "Sequential", "ReLU", "Sigmoid", "Tanh", "Softmax",
           "CrossEntropyLoss", "MSELoss", "functional"]
