"""spatial.py built from the reference's fast layers through the course kit's `Function` API (benchmark only).

`bench.kit_step` trains it through the kit to measure what the kit itself costs around a student's layers: the
layers are the reference's own (`reference.layers_fast`), so what separates this step from the reference's step
is the kit's Tensor, autograd engine, Linear, ReLU, loss and optimizer. It imports the reference, so it runs on
the host only, never in the sandbox. Written the way a student's file is (module 09's classes and signatures).
"""

import numpy as np

from reference import layers_fast
from tinytorch.core.activations import ReLU
from tinytorch.core.autograd import Function
from tinytorch.core.layers import Linear, Module
from tinytorch.core.tensor import Tensor


def _needs_grad(tensor):
    return tensor is not None and tensor.requires_grad


class Conv2DFunction(Function):
    def __init__(self, x, weight, bias, cache):
        super().__init__(x, weight, bias)
        self.cache = cache

    def apply(self, grad_output):
        x, weight, bias = self.saved_tensors
        grad_x, grad_weight, grad_bias = layers_fast.conv2d_backward(grad_output, self.cache,
                                                                     need_dx=x.requires_grad)
        return grad_x, grad_weight if weight.requires_grad else None, grad_bias if _needs_grad(bias) else None


class Conv2D(Module):
    """2-D convolution (cross-correlation), weight (F, C, KH, KW), bias (F,)."""

    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1, padding=0, bias=True):
        self.stride, self.padding = stride, padding
        kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        bound = 1.0 / np.sqrt(in_channels * kh * kw)
        self.weight = Tensor(np.random.uniform(-bound, bound, (out_channels, in_channels, kh, kw)).astype(np.float32),
                             requires_grad=True)
        self.bias = (Tensor(np.random.uniform(-bound, bound, (out_channels,)).astype(np.float32), requires_grad=True)
                     if bias else None)

    def forward(self, x):
        bias = self.bias
        out, cache = layers_fast.conv2d_forward(x.data, self.weight.data, None if bias is None else bias.data,
                                                stride=self.stride, padding=self.padding)
        output = Tensor(out, requires_grad=x.requires_grad or self.weight.requires_grad or _needs_grad(bias))
        if output.requires_grad:
            output._grad_fn = Conv2DFunction(x, self.weight, bias, cache)
        return output


class PoolFunction(Function):
    def __init__(self, x, backward, cache):
        super().__init__(x)
        self.backward, self.cache = backward, cache

    def apply(self, grad_output):
        return (self.backward(grad_output, self.cache),)


class _Pool(Module):
    forward_layer = backward_layer = None

    def __init__(self, kernel_size=2, stride=None):
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x):
        out, cache = type(self).forward_layer(x.data, kernel_size=self.kernel_size, stride=self.stride)
        output = Tensor(out, requires_grad=x.requires_grad)
        if x.requires_grad:
            output._grad_fn = PoolFunction(x, type(self).backward_layer, cache)
        return output


class MaxPool2D(_Pool):
    forward_layer, backward_layer = layers_fast.maxpool2d_forward, layers_fast.maxpool2d_backward


class AvgPool2D(_Pool):
    forward_layer, backward_layer = layers_fast.avgpool2d_forward, layers_fast.avgpool2d_backward


class Flatten(Module):
    """(N, C, H, W) -> (N, C*H*W), row-major."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class SimpleCNN(Module):
    """Conv(3->32) ReLU MaxPool Conv(32->64) ReLU MaxPool Flatten Linear(4096->128) ReLU Linear(128->10)."""

    def __init__(self):
        self.conv1 = Conv2D(3, 32, kernel_size=3, padding=1)
        self.relu1 = ReLU()
        self.pool1 = MaxPool2D(kernel_size=2)
        self.conv2 = Conv2D(32, 64, kernel_size=3, padding=1)
        self.relu2 = ReLU()
        self.pool2 = MaxPool2D(kernel_size=2)
        self.flatten = Flatten()
        self.fc1 = Linear(64 * 8 * 8, 128)
        self.relu3 = ReLU()
        self.fc2 = Linear(128, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu3(self.fc1(x))
        return self.fc2(x)
