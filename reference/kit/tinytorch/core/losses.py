"""Losses: CrossEntropyLoss (on logits and integer labels), MSELoss, BinaryCrossEntropyLoss, log_softmax."""

import numpy as np

from . import autograd
from .autograd import Function
from .backward_functions import EPSILON, BCEBackward
from .layers import Module
from .tensor import Tensor, _new


def _labels(targets):
    data = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
    return data


class LogSoftmaxFunction(Function):
    def __init__(self, x, probabilities, axis):
        super().__init__(x)
        self.probabilities, self.axis = probabilities, axis

    def apply(self, grad_output):
        return (grad_output - self.probabilities * grad_output.sum(axis=self.axis, keepdims=True),)


def log_softmax(x, dim=-1):
    """log(softmax(x)) along `dim`, computed stably (x - max - log(sum(exp(x - max))))."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    shifted = x.data - x.data.max(axis=dim, keepdims=True)
    out = shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))
    if autograd._grad_mode.enabled and x.requires_grad:
        return _new(out, True, LogSoftmaxFunction(x, np.exp(out), dim))
    return _new(out)


class CrossEntropyFunction(Function):
    def __init__(self, logits, probabilities, target_distribution, scale):
        super().__init__(logits)
        self.probabilities = probabilities
        self.target_distribution = target_distribution
        self.scale = scale

    def apply(self, grad_output):
        grad = self.probabilities - self.target_distribution
        grad_output = np.asarray(grad_output, dtype=grad.dtype)
        if grad_output.ndim == 0:
            grad *= grad.dtype.type(self.scale * grad_output)
        else:
            grad *= self.scale * grad_output[:, None]
        return (grad,)


def cross_entropy(logits, targets, label_smoothing=0.0, reduction="mean"):
    """Mean (or sum, or per-row) cross-entropy of softmax(logits) against integer class labels.

    Args:
        logits: (N, K) Tensor of unnormalised scores.
        targets: (N,) integer labels in [0, K), or (N, K) class probabilities.
        label_smoothing: mix the target with the uniform distribution by this amount (as PyTorch).
        reduction: "mean", "sum" or "none".
    """
    if not isinstance(logits, Tensor):
        logits = Tensor(logits)
    z = logits.data
    if z.ndim != 2:
        raise ValueError(f"cross_entropy expects logits of shape (N, K); got {z.shape}")
    n, k = z.shape
    labels = _labels(targets)
    shifted = z - z.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(sum_exp)
    if labels.ndim == 2:
        target_distribution = labels.astype(z.dtype, copy=False)
    else:
        labels = labels.astype(np.int64, copy=False).reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"cross_entropy got {n} rows of logits but {labels.shape[0]} labels")
        if n and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(f"labels must be in [0, {k}); got values from {labels.min()} to {labels.max()}")
        target_distribution = np.zeros_like(z)
        target_distribution[np.arange(n), labels] = 1
    if label_smoothing:
        target_distribution = target_distribution * (1 - label_smoothing) + label_smoothing / k
    per_row = -(target_distribution * log_probabilities).sum(axis=1)
    if reduction == "mean":
        loss, scale = per_row.mean(dtype=z.dtype), 1.0 / max(n, 1)
    elif reduction == "sum":
        loss, scale = per_row.sum(dtype=z.dtype), 1.0
    elif reduction == "none":
        loss, scale = per_row, 1.0
    else:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    loss = np.asarray(loss, dtype=z.dtype)
    if autograd._grad_mode.enabled and logits.requires_grad:
        probabilities = exp / sum_exp
        return _new(loss, True, CrossEntropyFunction(logits, probabilities, target_distribution, scale))
    return _new(loss)


class CrossEntropyLoss(Module):
    """Softmax cross-entropy on logits; `loss_fn(logits, labels)` returns a scalar Tensor (the batch mean)."""

    def __init__(self, label_smoothing=0.0, reduction="mean"):
        self.label_smoothing = label_smoothing
        self.reduction = reduction

    def forward(self, logits, targets):
        return cross_entropy(logits, targets, self.label_smoothing, self.reduction)


class MSELoss(Module):
    """Mean squared error."""

    def forward(self, predictions, targets):
        if not isinstance(targets, Tensor):
            targets = Tensor(np.asarray(targets, dtype=predictions.data.dtype))
        difference = predictions - targets
        return (difference * difference).mean()


class BinaryCrossEntropyLoss(Module):
    """Mean binary cross-entropy of probabilities (clipped to [EPSILON, 1 - EPSILON]) against 0/1 targets."""

    def forward(self, predictions, targets):
        if not isinstance(predictions, Tensor):
            predictions = Tensor(predictions)
        target_data = targets.data if isinstance(targets, Tensor) else np.asarray(targets)
        p = np.clip(predictions.data, EPSILON, 1 - EPSILON)
        loss = np.asarray(-np.mean(target_data * np.log(p) + (1 - target_data) * np.log(1 - p)),
                          dtype=predictions.data.dtype)
        if autograd._grad_mode.enabled and predictions.requires_grad:
            return _new(loss, True, BCEBackward(predictions, target_data))
        return _new(loss)
