"""PyTorch CPU as the independent oracle of the reference tests, and their tolerances."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def tolerance(dtype) -> dict:
    return {"rtol": 1e-4, "atol": 1e-5} if np.dtype(dtype) == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def torch_conv2d(x, w, b, stride, padding, dout):
    """(out, dx, dw, db) from PyTorch for the same conv2d and upstream gradient."""
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if b is None else torch.tensor(b, requires_grad=True)
    out = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), None if b is None else bt.grad.numpy()


def torch_pool(kind, x, kernel_size, stride, dout):
    """(out, dx) from PyTorch's max_pool2d / avg_pool2d."""
    xt = torch.tensor(x, requires_grad=True)
    pool = F.max_pool2d if kind == "max" else F.avg_pool2d
    out = pool(xt, kernel_size, stride)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), xt.grad.numpy()


def torch_pool_output_shape(x_shape, kernel_size, stride):
    pool = F.max_pool2d(torch.zeros(x_shape), kernel_size, stride)
    return tuple(pool.shape)
