"""Training utilities of the course's module 07: a cosine learning-rate schedule, gradient clipping, a Trainer."""

import numpy as np

from .tensor import Tensor

DEFAULT_MAX_LR = 0.1  # the course's defaults
DEFAULT_MIN_LR = 0.01
DEFAULT_TOTAL_EPOCHS = 100


class CosineSchedule:
    """Learning rate falling from max_lr to min_lr along half a cosine over total_epochs (min_lr afterwards)."""

    def __init__(self, max_lr=DEFAULT_MAX_LR, min_lr=DEFAULT_MIN_LR, total_epochs=DEFAULT_TOTAL_EPOCHS):
        self.max_lr = max_lr
        self.min_lr = min_lr
        self.total_epochs = total_epochs

    def get_lr(self, epoch):
        if epoch >= self.total_epochs:
            return self.min_lr
        progress = (1 + np.cos(np.pi * epoch / self.total_epochs)) / 2
        return float(self.min_lr + (self.max_lr - self.min_lr) * progress)


def _gradient_array(param):
    grad = param.grad
    return grad.data if isinstance(grad, Tensor) else grad


def clip_grad_norm(parameters, max_norm=1.0):
    """Scale every gradient by max_norm / total_norm when their joint L2 norm exceeds max_norm.

    Returns:
        The norm before clipping (a float).
    """
    parameters = list(parameters)
    gradients = [_gradient_array(p) for p in parameters if p.grad is not None]
    total_norm = float(np.sqrt(sum(float(np.sum(np.square(g, dtype=np.float64))) for g in gradients)))
    if total_norm > max_norm:
        factor = max_norm / total_norm
        for param in parameters:
            if param.grad is None:
                continue
            if isinstance(param.grad, Tensor):
                param.grad.data = param.grad.data * param.grad.data.dtype.type(factor)
            else:
                param.grad = param.grad * param.grad.dtype.type(factor)
    return total_norm


class Trainer:
    """Runs epochs of forward, loss, backward and optimizer steps, with an optional schedule and clipping.

    Args:
        model: has forward(x) (or is callable) and parameters().
        optimizer: an Optimizer over the model's parameters.
        loss_fn: loss_fn(outputs, targets) (or loss_fn.forward) returning a scalar Tensor.
        scheduler: has get_lr(epoch); the optimizer's lr is set from it after every epoch.
        grad_clip_norm: clip the gradients' joint norm to this before each step.
    """

    def __init__(self, model, optimizer, loss_fn, scheduler=None, grad_clip_norm=None):
        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.scheduler = scheduler
        self.grad_clip_norm = grad_clip_norm
        self.epoch = 0
        self.step = 0
        self.training_mode = True
        self.history = {"train_loss": [], "eval_loss": [], "learning_rates": []}

    def _forward(self, inputs):
        forward = getattr(self.model, "forward", None)
        return forward(inputs) if callable(forward) else self.model(inputs)

    def _loss(self, outputs, targets):
        forward = getattr(self.loss_fn, "forward", None)
        return forward(outputs, targets) if callable(forward) else self.loss_fn(outputs, targets)

    def _set_training(self, mode):
        self.training_mode = mode
        switch = getattr(self.model, "train", None)
        if callable(switch):
            switch(mode)
        else:
            self.model.training = mode

    def _update(self):
        if self.grad_clip_norm is not None:
            clip_grad_norm(self.model.parameters(), self.grad_clip_norm)
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.step += 1

    def train_epoch(self, dataloader, accumulation_steps=1):
        """One pass over `dataloader`; steps every `accumulation_steps` batches. Returns the mean loss."""
        self._set_training(True)
        total, updates, pending, pending_loss = 0.0, 0, 0, 0.0
        for inputs, targets in dataloader:
            loss = self._loss(self._forward(inputs), targets)
            pending_loss += float(np.asarray(loss.data)) / accumulation_steps
            loss.backward()
            pending += 1
            if pending == accumulation_steps:
                self._update()
                total, updates, pending, pending_loss = total + pending_loss, updates + 1, 0, 0.0
        if pending:
            self._update()
            total, updates = total + pending_loss, updates + 1
        average = total / max(updates, 1)
        self.history["train_loss"].append(average)
        if self.scheduler is not None:
            self.optimizer.lr = self.scheduler.get_lr(self.epoch)
            self.history["learning_rates"].append(self.optimizer.lr)
        self.epoch += 1
        return average

    def evaluate(self, dataloader):
        """(mean loss per batch, accuracy) over `dataloader`, without updating anything."""
        self._set_training(False)
        total_loss, batches, correct, count = 0.0, 0, 0, 0
        for inputs, targets in dataloader:
            outputs = self._forward(inputs)
            total_loss += float(np.asarray(self._loss(outputs, targets).data))
            batches += 1
            scores = np.asarray(outputs.data)
            if scores.ndim > 1:
                predictions = scores.argmax(axis=1)
                labels = np.asarray(targets.data)
                labels = labels.argmax(axis=1) if labels.ndim > 1 else labels
                correct += int(np.sum(predictions == labels))
                count += len(predictions)
        average = total_loss / batches if batches else 0.0
        self.history["eval_loss"].append(average)
        return average, (correct / count if count else 0.0)

    def save_checkpoint(self, path):
        """Parameters, step counters and learning rate to an .npz file (no pickle)."""
        arrays = {f"param_{i}": np.asarray(p.data) for i, p in enumerate(self.model.parameters())}
        np.savez(path, epoch=self.epoch, step=self.step, lr=np.float64(self.optimizer.lr or 0.0), **arrays)

    def load_checkpoint(self, path):
        with np.load(path, allow_pickle=False) as saved:
            self.epoch, self.step = int(saved["epoch"]), int(saved["step"])
            self.optimizer.lr = float(saved["lr"])
            for i, param in enumerate(self.model.parameters()):
                if f"param_{i}" in saved:
                    param.data = np.array(saved[f"param_{i}"], dtype=param.data.dtype)


__all__ = ["DEFAULT_MAX_LR", "DEFAULT_MIN_LR", "DEFAULT_TOTAL_EPOCHS", "CosineSchedule", "clip_grad_norm", "Trainer"]
