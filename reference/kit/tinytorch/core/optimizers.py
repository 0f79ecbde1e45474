"""Optimizers with PyTorch's update rules: SGD (momentum, Nesterov, weight decay), Adam and AdamW.

`optimizer.lr` may be changed between steps (learning-rate schedules). Updates are made in place
on each parameter's `.data`, in its own dtype.
"""

import numpy as np

DEFAULT_LEARNING_RATE_SGD = 0.01  # the course's defaults
DEFAULT_LEARNING_RATE_ADAM = 0.001
DEFAULT_MOMENTUM = 0.9
DEFAULT_BETA1 = 0.9
DEFAULT_BETA2 = 0.999
DEFAULT_EPS = 1e-8
DEFAULT_WEIGHT_DECAY_ADAMW = 0.01


class Optimizer:
    """Base class: keeps `params` (a list) and `step_count`; subclasses implement `step()`.

    Args:
        params: iterable of Tensors that require grad.
        lr: learning rate (the course's base class takes params only; subclasses set lr).
    """

    def __init__(self, params, lr=None):
        self.params = list(params)
        if not self.params:
            raise ValueError("the optimizer got an empty parameter list")
        for index, param in enumerate(self.params):
            if not getattr(param, "requires_grad", False):
                raise ValueError(f"Parameter {index} does not require gradients. Set requires_grad=True.")
        self.lr = lr
        self.step_count = 0

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    """p -= lr * update, where update = grad + weight_decay * p, through momentum (dampening 0) if set.

    Args:
        params: iterable of Tensors.
        lr: learning rate.
        momentum: momentum factor (0 disables).
        nesterov: use Nesterov momentum (needs momentum > 0).
        weight_decay: L2 penalty added to the gradient.
    """

    def __init__(self, params, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr)
        if nesterov and momentum <= 0:
            raise ValueError("Nesterov momentum needs momentum > 0")
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocities = [None] * len(self.params)

    @property
    def momentum_buffers(self):
        """The course's name for the velocity of each parameter (None before its first step)."""
        return self.velocities

    def has_momentum(self):
        return self.momentum > 0

    def get_momentum_state(self):
        """Copies of the momentum buffers (None without momentum), e.g. for a checkpoint."""
        if not self.has_momentum():
            return None
        return [None if buffer is None else buffer.copy() for buffer in self.velocities]

    def set_momentum_state(self, state):
        if state is None or not self.has_momentum():
            return
        if len(state) != len(self.velocities):
            raise ValueError(f"State length {len(state)} doesn't match optimizer parameters {len(self.velocities)}")
        self.velocities = [None if buffer is None else np.array(buffer, copy=True) for buffer in state]

    def step(self):
        # The same float operations in the same order as `p -= lr * (g + wd*p + m*v)` written out, but into two
        # scratch arrays per parameter kept between steps: no new arrays per step (fc1's weight is 2 MB).
        self.step_count += 1
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            data = p.data
            kind = data.dtype.type
            grad = np.asarray(p.grad, dtype=data.dtype)
            first, second = self._scratch(i, data)
            if self.weight_decay:
                np.multiply(data, kind(self.weight_decay), out=first)
                first += grad
                grad = first
            update = grad
            if self.momentum:
                velocity = self.velocities[i]
                if velocity is None:
                    velocity = self.velocities[i] = np.array(grad, dtype=data.dtype, copy=True)
                else:
                    velocity *= self.momentum
                    velocity += grad
                if self.nesterov:
                    np.multiply(velocity, kind(self.momentum), out=second)
                    second += grad
                    update = second
                else:
                    update = velocity
            np.multiply(update, kind(self.lr), out=second)
            data -= second

    def _scratch(self, index, data):
        """Two arrays shaped like parameter `index`, reused by every step."""
        scratch = getattr(self, "_scratch_arrays", None)
        if scratch is None:
            scratch = self._scratch_arrays = [None] * len(self.params)
        pair = scratch[index]
        if pair is None or pair[0].shape != data.shape or pair[0].dtype != data.dtype:
            pair = scratch[index] = (np.empty_like(data), np.empty_like(data))
        return pair


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; weight_decay is an L2 term added to the gradient, as in PyTorch."""

    decoupled = False

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.first_moments = [np.zeros_like(p.data) for p in self.params]
        self.second_moments = [np.zeros_like(p.data) for p in self.params]

    def step(self):
        self.step_count += 1
        t = self.step_count
        beta1, beta2 = self.beta1, self.beta2
        correction1 = 1 - beta1 ** t
        correction2 = 1 - beta2 ** t
        for p, m, v in zip(self.params, self.first_moments, self.second_moments):
            if p.grad is None:
                continue
            data = p.data
            kind = data.dtype.type
            grad = np.asarray(p.grad, dtype=data.dtype)
            if self.weight_decay:
                if self.decoupled:
                    data *= kind(1 - self.lr * self.weight_decay)
                else:
                    grad = grad + kind(self.weight_decay) * data
            m *= kind(beta1)
            m += kind(1 - beta1) * grad
            v *= kind(beta2)
            v += kind(1 - beta2) * (grad * grad)
            denominator = np.sqrt(v)
            denominator /= kind(np.sqrt(correction2))
            denominator += kind(self.eps)
            data -= kind(self.lr / correction1) * m / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (p *= 1 - lr * weight_decay before the Adam step)."""

    decoupled = True

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)
