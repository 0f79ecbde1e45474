"""Neural-network building blocks, re-exported from tinytorch.core."""

from ..core.activations import ReLU, Sigmoid, Softmax, Tanh
from ..core.layers import Dense, Dropout, Layer, Linear, Module, Sequential
from ..core.losses import CrossEntropyLoss, MSELoss
from . import functional

__all__ = ["Module", "Layer", "Linear", "Dense", "Dropout", "Sequential", "ReLU", "Sigmoid", "Tanh", "Softmax",
           "CrossEntropyLoss", "MSELoss", "functional"]
