"""Plain-loop reference layers: the oracle the fast layers are tested against.

Written for obviousness, not speed: every output element is one explicit window sum or max. Same API as
`reference.layers_fast` (cs231n style); caches are private to this module.
"""

from __future__ import annotations

import numpy as np

from reference.shapes import IntPair, check_conv_args, check_dout, check_pool_args, conv2d_output_shape
from reference.shapes import pool2d_output_shape


def conv2d_forward(x, w, b, *, stride: IntPair = 1, padding: IntPair = 0):
    """2-D cross-correlation (what deep-learning libraries call convolution).

    Args:
        x: input, shape (N, C, H, W).
        w: filters, shape (F, C, KH, KW).
        b: bias, shape (F,), or None for no bias.
        stride: int or (sh, sw), each >= 1.
        padding: int or (ph, pw), zeros added on both sides, each >= 0.

    Returns:
        (out, cache): out of shape (N, F, OH, OW) with OH = (H + 2*ph - KH) // sh + 1 (same for OW).
    """
    x, w, b, (sh, sw), (ph, pw) = check_conv_args(x, w, b, stride, padding)
    n_batch, _, _, _ = x.shape
    n_filters, _, kh, kw = w.shape
    _, _, oh, ow = conv2d_output_shape(x.shape, w.shape, stride=stride, padding=padding)
    x_padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n_batch, n_filters, oh, ow), dtype=x.dtype)
    for n in range(n_batch):
        for f in range(n_filters):
            for i in range(oh):
                for j in range(ow):
                    window = x_padded[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    out[n, f, i, j] = np.sum(window * w[f])
                    if b is not None:
                        out[n, f, i, j] += b[f]
    return out, (x, w, b, (sh, sw), (ph, pw))


def conv2d_backward(dout, cache):
    """Gradients of conv2d_forward.

    Args:
        dout: upstream gradient, shape (N, F, OH, OW).
        cache: from conv2d_forward.

    Returns:
        (dx, dw, db) with the shapes of x, w and b; db is None when the forward had no bias.
    """
    x, w, b, (sh, sw), (ph, pw) = cache
    n_batch, _, height, width = x.shape
    n_filters, _, kh, kw = w.shape
    _, _, oh, ow = conv2d_output_shape(x.shape, w.shape, stride=(sh, sw), padding=(ph, pw))
    dout = check_dout(dout, (n_batch, n_filters, oh, ow), x.dtype)
    x_padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dx_padded = np.zeros_like(x_padded)
    dw = np.zeros_like(w)
    for n in range(n_batch):
        for f in range(n_filters):
            for i in range(oh):
                for j in range(ow):
                    g = dout[n, f, i, j]
                    window = x_padded[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    dw[f] += g * window
                    dx_padded[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += g * w[f]
    dx = dx_padded[:, :, ph:ph + height, pw:pw + width].copy()
    db = None if b is None else dout.sum(axis=(0, 2, 3)).astype(x.dtype)
    return dx, dw, db


def maxpool2d_forward(x, *, kernel_size: IntPair, stride: IntPair | None = None):
    """Max over each KH x KW window; stride defaults to kernel_size, windows may overlap.

    Args:
        x: input, shape (N, C, H, W).
        kernel_size: int or (kh, kw).
        stride: int or (sh, sw), or None for kernel_size.

    Returns:
        (out, cache): out of shape (N, C, OH, OW).
    """
    x, (kh, kw), (sh, sw) = check_pool_args(x, kernel_size, stride)
    out_shape = pool2d_output_shape(x.shape, kernel_size=(kh, kw), stride=(sh, sw))
    out = np.zeros(out_shape, dtype=x.dtype)
    n_batch, channels, oh, ow = out_shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    out[n, c, i, j] = np.max(x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw])
    return out, (x, (kh, kw), (sh, sw))


def maxpool2d_backward(dout, cache):
    """Gradient of maxpool2d_forward: each window's gradient goes to its FIRST maximum (row-major), like PyTorch."""
    x, (kh, kw), (sh, sw) = cache
    out_shape = pool2d_output_shape(x.shape, kernel_size=(kh, kw), stride=(sh, sw))
    dout = check_dout(dout, out_shape, x.dtype)
    dx = np.zeros_like(x)
    n_batch, channels, oh, ow = out_shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    window = x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    # np.argmax returns the first occurrence of the maximum in row-major order.
                    r, s = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * sh + r, j * sw + s] += dout[n, c, i, j]
    return dx


def avgpool2d_forward(x, *, kernel_size: IntPair, stride: IntPair | None = None):
    """Mean over each KH x KW window; stride defaults to kernel_size. Returns (out, cache), out (N, C, OH, OW)."""
    x, (kh, kw), (sh, sw) = check_pool_args(x, kernel_size, stride)
    out_shape = pool2d_output_shape(x.shape, kernel_size=(kh, kw), stride=(sh, sw))
    out = np.zeros(out_shape, dtype=x.dtype)
    n_batch, channels, oh, ow = out_shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    out[n, c, i, j] = np.mean(x[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw])
    return out, (x.shape, x.dtype, (kh, kw), (sh, sw))


def avgpool2d_backward(dout, cache):
    """Gradient of avgpool2d_forward: each window spreads dout / (KH * KW) evenly over its elements."""
    x_shape, dtype, (kh, kw), (sh, sw) = cache
    out_shape = pool2d_output_shape(x_shape, kernel_size=(kh, kw), stride=(sh, sw))
    dout = check_dout(dout, out_shape, dtype)
    dx = np.zeros(x_shape, dtype=dtype)
    n_batch, channels, oh, ow = out_shape
    for n in range(n_batch):
        for c in range(channels):
            for i in range(oh):
                for j in range(ow):
                    dx[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw] += dout[n, c, i, j] / (kh * kw)
    return dx


def flatten_forward(x):
    """(N, ...) -> (N, prod(...)) in row-major (C, H, W) order. Returns (out, cache)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one more (N, ...), got shape {x.shape}")
    n_batch = x.shape[0]
    out = np.zeros((n_batch, int(np.prod(x.shape[1:]))), dtype=x.dtype)
    for n in range(n_batch):
        out[n] = x[n].ravel(order="C")
    return out, x.shape


def flatten_backward(dout, cache):
    """Gradient of flatten_forward: reshape back to the input's shape."""
    x_shape = cache
    dout = np.asarray(dout)
    expected = (x_shape[0], int(np.prod(x_shape[1:])))
    if dout.shape != expected:
        raise ValueError(f"dout must have the forward output's shape {expected}, got {dout.shape}")
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for n in range(x_shape[0]):
        dx[n] = dout[n].reshape(x_shape[1:])
    return dx
