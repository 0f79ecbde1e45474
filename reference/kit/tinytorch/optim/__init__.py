"""Optimizers under PyTorch's name (`tinytorch.optim.SGD`), re-exported from tinytorch.core.optimizers."""

from ..core.optimizers import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
