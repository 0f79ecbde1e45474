"""Argument checks and output-shape arithmetic shared by the loop and the fast reference layers.

Every check raises `ValueError` naming what was expected, so a caller (and a student reading feedback built
from it) sees the problem rather than an `IndexError` from deep inside a loop.
"""

from __future__ import annotations

from typing import Union

import numpy as np

IntPair = Union[int, tuple[int, int]]


def as_pair(value: IntPair, name: str, *, minimum: int) -> tuple[int, int]:
    """Turn an int or an (h, w) pair into a checked (h, w) tuple of ints >= minimum."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an int or an (h, w) tuple of ints, got {value!r}")
    if isinstance(value, (int, np.integer)):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in value
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be an int or an (h, w) tuple of ints, got {value!r}")
    if pair[0] < minimum or pair[1] < minimum:
        bound = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return pair


def float_array(value, name: str) -> np.ndarray:
    """Return `value` as an ndarray of a floating dtype (float32 and float64 kept as they are)."""
    array = np.asarray(value)
    if array.dtype.kind == "f":
        return array
    if array.dtype.kind in "iub":
        return array.astype(np.float64)
    raise ValueError(f"{name} must hold real numbers (float32 or float64), got dtype {array.dtype}")


def common_float_dtype(*arrays: np.ndarray | None) -> np.dtype:
    """The floating dtype a mixed computation is carried out in (float32 only if every input is float32)."""
    dtype = np.result_type(*[a.dtype for a in arrays if a is not None])
    if dtype.kind != "f":
        dtype = np.dtype(np.float64)
    return dtype


def check_nchw(x: np.ndarray, name: str = "x") -> None:
    """Require a 4-D (N, C, H, W) array with no zero-sized axis."""
    if x.ndim != 4:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got {x.ndim}-D with shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"{name} must have no empty axis, got shape {x.shape}")


def output_size(size: int, kernel: int, stride: int, padding: int, *, what: str) -> int:
    """Output length along one axis: floor((size + 2*padding - kernel) / stride) + 1, checked to be >= 1."""
    padded = size + 2 * padding
    if kernel > padded:
        raise ValueError(
            f"{what}: kernel {kernel} is larger than the padded input {padded} "
            f"(input {size} + 2 * padding {padding})"
        )
    return (padded - kernel) // stride + 1


def conv2d_output_shape(
    input_shape: tuple[int, int, int, int],
    weight_shape: tuple[int, int, int, int],
    *,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> tuple[int, int, int, int]:
    """Shape (N, F, OH, OW) of conv2d_forward's output for x of `input_shape` (N, C, H, W), w (F, C, KH, KW)."""
    n, c, h, w_ = input_shape
    f, wc, kh, kw = weight_shape
    if c != wc:
        raise ValueError(f"w expects {wc} input channels (w shape (F, C, KH, KW) = {tuple(weight_shape)}), "
                         f"but x has C={c} (x shape {tuple(input_shape)})")
    sh, sw = as_pair(stride, "stride", minimum=1)
    ph, pw = as_pair(padding, "padding", minimum=0)
    oh = output_size(h, kh, sh, ph, what="conv2d height")
    ow = output_size(w_, kw, sw, pw, what="conv2d width")
    return n, f, oh, ow


def pool2d_output_shape(
    input_shape: tuple[int, int, int, int], *, kernel_size: IntPair, stride: IntPair | None = None
) -> tuple[int, int, int, int]:
    """Shape (N, C, OH, OW) of a max/avg pool over x of `input_shape`; stride defaults to kernel_size."""
    n, c, h, w = input_shape
    kh, kw = as_pair(kernel_size, "kernel_size", minimum=1)
    sh, sw = as_pair(kernel_size if stride is None else stride, "stride", minimum=1)
    return n, c, output_size(h, kh, sh, 0, what="pool height"), output_size(w, kw, sw, 0, what="pool width")


def check_conv_args(x, w, b, stride, padding):
    """Validate conv2d arguments; return (x, w, b, (sh, sw), (ph, pw)) cast to one floating dtype."""
    x = float_array(x, "x")
    w = float_array(w, "w")
    check_nchw(x, "x")
    if w.ndim != 4:
        raise ValueError(f"w must be 4-D (F, C, KH, KW), got {w.ndim}-D with shape {w.shape}")
    if 0 in w.shape:
        raise ValueError(f"w must have no empty axis, got shape {w.shape}")
    if b is not None:
        b = float_array(b, "b")
        if b.shape != (w.shape[0],):
            raise ValueError(f"b must be None or of shape (F,) = ({w.shape[0]},), got shape {b.shape}")
    conv2d_output_shape(x.shape, w.shape, stride=stride, padding=padding)
    dtype = common_float_dtype(x, w, b)
    x, w = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    if b is not None:
        b = b.astype(dtype, copy=False)
    return x, w, b, as_pair(stride, "stride", minimum=1), as_pair(padding, "padding", minimum=0)


def check_pool_args(x, kernel_size, stride):
    """Validate pooling arguments; return (x, (kh, kw), (sh, sw))."""
    x = float_array(x, "x")
    check_nchw(x, "x")
    pool2d_output_shape(x.shape, kernel_size=kernel_size, stride=stride)
    kernel = as_pair(kernel_size, "kernel_size", minimum=1)
    return x, kernel, as_pair(kernel_size if stride is None else stride, "stride", minimum=1)


def check_dout(dout, expected_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Require the upstream gradient to have the forward output's shape; cast it to the forward dtype."""
    dout = float_array(dout, "dout")
    if dout.shape != tuple(expected_shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(expected_shape)}, got {dout.shape}")
    return dout.astype(dtype, copy=False)
