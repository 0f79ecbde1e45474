"""Fast vectorized reference layers (im2col + one BLAS matmul per pass): what grading and training use.

Same API as `reference.layers_loop`. float32 and float64 are kept as given (mixed inputs compute in the wider
type).

Why the memory layout looks odd: a convolution's matmul naturally yields its output channel-major, as a
(F, N*OH*OW) matrix. Instead of copying that into (N, F, OH, OW) order, `conv2d_forward` returns an (N, F, OH, OW)
*view* of (F, N, OH, OW) memory. NumPy's element-wise functions keep the memory order of their inputs, so ReLU and
pooling outputs stay channel-major too, and the next convolution gathers its columns from contiguous (C, N, H, W)
memory and hands its gradient back the same way. Values, shapes and dtypes are exactly those of a plain NCHW
array; only `.strides` differ, and any consumer that needs C order gets it from `np.ascontiguousarray`.

Fast paths (any other case takes the general strided-window path; tests cover both):
- same-size stride-1 convolutions (k3 p1, k5 p2, ...): columns are whole image planes shifted by one flat offset,
  long contiguous copies instead of short window rows, and no padded copy of x;
- 2x2 stride-2 max-pooling on float32 with even H and W: separable, over whole planes, exact bit-shift backward;
- large element-wise passes are split by channel over `reference.parallel.num_threads()` threads.
"""

from __future__ import annotations

import sys

import numpy as np

from reference.parallel import run_chunks
from reference.shapes import IntPair, check_conv_args, check_dout, check_pool_args, conv2d_output_shape
from reference.shapes import pool2d_output_shape

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "maxpool2d_forward",
    "maxpool2d_backward",
    "avgpool2d_forward",
    "avgpool2d_backward",
    "flatten_forward",
    "flatten_backward",
    "conv2d_output_shape",
    "pool2d_output_shape",
]


def _window_slice(offset: int, stride: int, count: int) -> slice:
    """Positions offset, offset + stride, ... (count of them): one kernel offset across all output positions."""
    return slice(offset, offset + stride * (count - 1) + 1, stride)


def _channel_major(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (C, N, H, W) view; contiguous when x came from this module's layers."""
    return x.transpose(1, 0, 2, 3)


def _im2col(x_cn: np.ndarray, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int) -> np.ndarray:
    """Columns (C*KH*KW, N*OH*OW) of padded (C, N, Hp, Wp) input, row order (c, kh, kw) like w.reshape(F, -1)."""
    channels, n_batch = x_cn.shape[:2]
    cols = np.empty((channels, kh, kw, n_batch, oh, ow), dtype=x_cn.dtype)

    def copy_channels(first: int, last: int) -> None:
        for i in range(kh):
            for j in range(kw):
                cols[first:last, i, j] = x_cn[first:last, :, _window_slice(i, sh, oh), _window_slice(j, sw, ow)]

    run_chunks(copy_channels, channels, cols.size)
    return cols.reshape(channels * kh * kw, n_batch * oh * ow)


def _is_same_size_stride1(kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> bool:
    """Stride 1 with padding (K - 1) / 2: output as large as the input (SimpleCNN's k3 p1 convolutions)."""
    return sh == sw == 1 and kh == 2 * ph + 1 and kw == 2 * pw + 1


def _kernel_offsets(kh: int, kw: int, ph: int, pw: int, width: int):
    """Yield (i, j, flat shift, column shift) per kernel offset of a same-size stride-1 convolution.

    Output pixel p = oh * W + ow reads input pixel p + shift of the same image plane, where
    shift = (i - ph) * W + (j - pw), unless that crosses the plane's top/bottom edge (out of range) or wraps
    around a left/right edge (the first or last |j - pw| columns), where it reads padding, i.e. zero.
    """
    for i in range(kh):
        for j in range(kw):
            yield i, j, (i - ph) * width + (j - pw), j - pw


# Channel blocks of about this many bytes stay in a core's L2 cache (2 MiB on the reference machine).
CACHE_BLOCK_BYTES = 1 << 20


def _cache_sized_blocks(first: int, last: int, channel_bytes: int):
    """Split channels [first, last) into blocks of about CACHE_BLOCK_BYTES of planes each.

    Each block's planes stay in the core's cache while all KH*KW offsets are copied or added, instead of being
    streamed from memory once per offset.
    """
    step = max(1, CACHE_BLOCK_BYTES // max(1, channel_bytes))
    for low in range(first, last, step):
        yield low, min(last, low + step)


def _valid_range(shift: int, plane: int) -> tuple[int, int]:
    """Output pixels [start, stop) whose shifted input pixel lies inside the plane (empty if none)."""
    start = min(max(0, -shift), plane)
    return start, max(start, min(plane, plane - shift))


def _zero_wrapped_columns(planes: np.ndarray, column_shift: int, width: int) -> None:
    """Zero, in place, the output columns whose flat shift wrapped around a row edge (planes: (..., H*W))."""
    if column_shift == 0:
        return
    rows = planes.reshape(*planes.shape[:-1], -1, width)
    if column_shift < 0:
        rows[..., :-column_shift] = 0
    else:
        rows[..., width - column_shift:] = 0


def _im2col_same(x: np.ndarray, kh: int, kw: int, ph: int, pw: int) -> np.ndarray:
    """Columns (C*KH*KW, N*H*W) for a same-size stride-1 convolution, copied as whole shifted image planes.

    NumPy copies long contiguous runs far faster than the short window rows of a padded strided slice, and no
    padded copy of x is needed.
    """
    n_batch, channels, height, width = x.shape
    plane = height * width
    x_planes = _channel_major(x).reshape(channels, n_batch, plane)
    cols = np.empty((channels, kh, kw, n_batch, plane), dtype=x.dtype)

    def copy_channels(first: int, last: int) -> None:
        for low, high in _cache_sized_blocks(first, last, x_planes[0].nbytes):
            for i, j, shift, column_shift in _kernel_offsets(kh, kw, ph, pw, width):
                target = cols[low:high, i, j]
                start, stop = _valid_range(shift, plane)
                target[:, :, start:stop] = x_planes[low:high, :, start + shift:stop + shift]
                target[:, :, :start] = 0
                target[:, :, stop:] = 0
                _zero_wrapped_columns(target, column_shift, width)

    run_chunks(copy_channels, channels, cols.size)
    return cols.reshape(channels * kh * kw, n_batch * plane)


def _col2im_same(dcols: np.ndarray, x_shape, kh: int, kw: int, ph: int, pw: int) -> np.ndarray:
    """Input gradient (C, N, H, W) from dcols (C*KH*KW, N*H*W) of a same-size stride-1 convolution.

    The transpose of `_im2col_same`: each offset's plane, wrapped columns zeroed, is added back shifted. dcols is
    scratch and is modified.
    """
    n_batch, channels, height, width = x_shape
    plane = height * width
    dcols = dcols.reshape(channels, kh, kw, n_batch, plane)
    dx_planes = np.empty((channels, n_batch, plane), dtype=dcols.dtype)

    def add_channels(first: int, last: int) -> None:
        for low, high in _cache_sized_blocks(first, last, dx_planes[0].nbytes):
            dx_planes[low:high] = dcols[low:high, ph, pw]  # the centre offset: no shift, covers every pixel
            for i, j, shift, column_shift in _kernel_offsets(kh, kw, ph, pw, width):
                if shift == 0 and column_shift == 0:
                    continue
                source = dcols[low:high, i, j]
                _zero_wrapped_columns(source, column_shift, width)
                start, stop = _valid_range(shift, plane)
                dx_planes[low:high, :, start + shift:stop + shift] += source[:, :, start:stop]

    run_chunks(add_channels, channels, dcols.size)
    return dx_planes.reshape(channels, n_batch, height, width)


def _pad_channel_major(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """x (N, C, H, W) -> zero-padded (C, N, H + 2*ph, W + 2*pw), contiguous."""
    x_cn = _channel_major(x)
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(x_cn)
    channels, n_batch, height, width = x_cn.shape
    padded = np.zeros((channels, n_batch, height + 2 * ph, width + 2 * pw), dtype=x.dtype)
    padded[:, :, ph:ph + height, pw:pw + width] = x_cn
    return padded


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
    n_batch, _, height, width = x.shape
    n_filters, _, kh, kw = w.shape
    _, _, oh, ow = conv2d_output_shape(x.shape, w.shape, stride=(sh, sw), padding=(ph, pw))
    if _is_same_size_stride1(kh, kw, sh, sw, ph, pw):
        cols = _im2col_same(x, kh, kw, ph, pw)
    else:
        cols = _im2col(_pad_channel_major(x, ph, pw), kh, kw, sh, sw, oh, ow)
    w_matrix = w.reshape(n_filters, -1)
    out_matrix = w_matrix @ cols
    if b is not None:
        def add_bias(first: int, last: int) -> None:
            out_matrix[first:last] += b[first:last, None]

        run_chunks(add_bias, n_filters, out_matrix.size)
    out = out_matrix.reshape(n_filters, n_batch, oh, ow).transpose(1, 0, 2, 3)
    cache = (cols, w, b is not None, x.shape, (sh, sw), (ph, pw))
    return out, cache


def conv2d_backward(dout, cache, *, need_dx: bool = True):
    """Gradients of conv2d_forward.

    Args:
        dout: upstream gradient, shape (N, F, OH, OW).
        cache: from conv2d_forward.
        need_dx: False skips the input gradient (a network's first layer), returning None for dx.

    Returns:
        (dx, dw, db) with the shapes of x, w and b; db is None when the forward had no bias.
    """
    cols, w, has_bias, x_shape, (sh, sw), (ph, pw) = cache
    n_batch, channels, height, width = x_shape
    n_filters, _, kh, kw = w.shape
    _, _, oh, ow = conv2d_output_shape(x_shape, w.shape, stride=(sh, sw), padding=(ph, pw))
    dout = check_dout(dout, (n_batch, n_filters, oh, ow), w.dtype)
    dout_matrix = _channel_major(dout).reshape(n_filters, n_batch * oh * ow)
    # (cols @ dout^T)^T rather than dout @ cols^T: the same product, but OpenBLAS is ~20% faster at this
    # orientation of the long reduction (measured for SimpleCNN's conv2).
    dw = (cols @ dout_matrix.T).T.reshape(w.shape)
    db = dout_matrix.sum(axis=1) if has_bias else None
    if not need_dx:
        return None, dw, db
    dcols = w.reshape(n_filters, -1).T @ dout_matrix
    if _is_same_size_stride1(kh, kw, sh, sw, ph, pw):
        return _channel_major(_col2im_same(dcols, x_shape, kh, kw, ph, pw)), dw, db
    dcols = dcols.reshape(channels, kh, kw, n_batch, oh, ow)
    dx_padded = np.zeros((channels, n_batch, height + 2 * ph, width + 2 * pw), dtype=w.dtype)
    for i in range(kh):
        for j in range(kw):
            dx_padded[:, :, _window_slice(i, sh, oh), _window_slice(j, sw, ow)] += dcols[:, i, j]
    dx = dx_padded[:, :, ph:ph + height, pw:pw + width]
    return _channel_major(dx), dw, db


def _pool_windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int):
    """Yield (flat kernel offset, strided view (N, C, OH, OW)) for each of the KH*KW kernel offsets."""
    for i in range(kh):
        for j in range(kw):
            yield i * kw + j, x[:, :, _window_slice(i, sh, oh), _window_slice(j, sw, ow)]


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
    _, _, oh, ow = pool2d_output_shape(x.shape, kernel_size=(kh, kw), stride=(sh, sw))
    layout = (x.shape, x.dtype, x.strides, (kh, kw), (sh, sw))
    if (kh, kw) == (2, 2) and (sh, sw) == (2, 2) and _rows_are_float32_pairs(x):
        return _maxpool2x2_forward(x, layout)
    windows = _pool_windows(x, kh, kw, sh, sw, oh, ow)
    _, first = next(windows)
    out = first.copy(order="K")
    # Offset of each window's maximum; a later offset wins only if strictly larger, so ties keep the first
    # maximum in row-major window order (PyTorch's rule).
    argmax = np.zeros_like(out, dtype=np.uint8 if kh * kw < 256 else np.int32)
    for offset, view in windows:
        larger = view > out
        np.maximum(out, view, out=out)
        np.copyto(argmax, offset, where=larger)
    return out, ("windows", argmax, layout)


def _rows_are_float32_pairs(x: np.ndarray) -> bool:
    """Whether x (N, C, H, W) suits the 2x2 fast path: float32, even H and W, each image plane contiguous."""
    n_batch, channels, height, width = x.shape
    return (x.dtype == np.float32 and sys.byteorder == "little" and height % 2 == 0 and width % 2 == 0
            and x.strides[3] == 4 and x.strides[2] == 4 * width)


def _maxpool2x2_forward(x: np.ndarray, layout):
    """The common 2x2 stride-2 pool on float32, separably: max of column pairs, then of row pairs.

    NumPy is slow on short strided inner loops, so each step runs over whole image planes: column pairs are the
    even/odd elements of a flattened plane. Ties: the right column wins only if strictly larger, the lower row
    only if strictly larger, which is PyTorch's first-maximum rule.

    For the backward pass each input element gets a shift code: 32 if it is a right column, plus 64 if its row
    lost. `_maxpool2x2_backward` then builds each (left, right) float32 pair as one uint64, dout's bits shifted
    left by that code: 0 keeps them in the left float, 32 moves them to the right float, >= 64 gives 0. These are
    bit moves, so the gradient is exact.
    """
    n_batch, channels, height, width = x.shape
    oh, ow = height // 2, width // 2
    channel_major = _is_channel_major(x.shape, x.strides)
    out = _empty_channels_second((n_batch, channels, oh, ow), np.float32, channel_major)
    shift_code = _empty_channels_second((n_batch, channels, oh, 2, ow), np.uint8, channel_major)

    def pool_channels(first: int, last: int) -> None:
        for start, stop in _cache_sized_blocks(first, last, x[:, 0].nbytes):
            count = stop - start
            planes = x[:, start:stop].reshape(n_batch, count, height * width)
            left, right = planes[:, :, 0::2], planes[:, :, 1::2]
            right_wins = right > left
            row_max = np.maximum(left, right).reshape(n_batch, count, oh, 2, ow)
            upper, lower = row_max[:, :, :, 0], row_max[:, :, :, 1]
            lower_wins = lower > upper
            np.maximum(upper, lower, out=out[:, start:stop])
            code = shift_code[:, start:stop]
            np.left_shift(right_wins.view(np.uint8).reshape(n_batch, count, oh, 2, ow), 5, out=code)
            code[:, :, :, 0] += lower_wins.view(np.uint8) << 6
            code[:, :, :, 1] += (~lower_wins).view(np.uint8) << 6

    run_chunks(pool_channels, channels, x.size)
    return out, ("2x2", shift_code, layout)


def _maxpool2x2_backward(dout: np.ndarray, shift_code: np.ndarray, x_shape) -> np.ndarray:
    """dx for `_maxpool2x2_forward` from dout (N, C, OH, OW) float32 and the forward's shift codes."""
    if dout.strides[3] != 4:
        dout = np.ascontiguousarray(dout)
    n_batch, channels, oh, ow = dout.shape
    channel_major = _is_channel_major(shift_code.shape, shift_code.strides)
    pairs = _empty_channels_second((n_batch, channels, oh, 2, ow), np.uint64, channel_major)

    def route_channels(first: int, last: int) -> None:
        for start, stop in _cache_sized_blocks(first, last, pairs[:, 0].nbytes):
            bits = dout[:, start:stop].view(np.uint32).astype(np.uint64)[:, :, :, None, :]
            np.left_shift(bits, shift_code[:, start:stop], out=pairs[:, start:stop])

    run_chunks(route_channels, channels, 4 * dout.size)
    return pairs.view(np.float32).reshape(x_shape)


def _empty_channels_second(shape, dtype, channel_major: bool) -> np.ndarray:
    """Uninitialised (N, C, ...) array, stored channel-major (C, N, ...) in memory if asked."""
    if channel_major:
        return np.empty((shape[1], shape[0], *shape[2:]), dtype=dtype).swapaxes(0, 1)
    return np.empty(shape, dtype=dtype)


def _is_channel_major(shape, strides) -> bool:
    """Whether an (N, C, ...) array with these strides keeps its channels outermost in memory."""
    return shape[0] > 1 and shape[1] > 1 and strides[1] > strides[0]


def _zeros_like_layout(shape, dtype, strides, *, fill: bool = True) -> np.ndarray:
    """Zeros (or, with fill=False, uninitialised) of `shape`, channel-major in memory if `strides` were."""
    n_batch, channels, height, width = shape
    allocate = np.zeros if fill else np.empty
    if _is_channel_major(shape, strides):
        return allocate((channels, n_batch, height, width), dtype=dtype).transpose(1, 0, 2, 3)
    return allocate(shape, dtype=dtype)


def _gradient_in_layout(dout: np.ndarray, x_shape, x_strides) -> np.ndarray:
    """dout laid out like the forward input, so element-wise passes walk both arrays in the same memory order."""
    if _is_channel_major(x_shape, x_strides) and not _is_channel_major(dout.shape, dout.strides):
        return np.ascontiguousarray(_channel_major(dout)).transpose(1, 0, 2, 3)
    return dout


def maxpool2d_backward(dout, cache):
    """Gradient of maxpool2d_forward: each window's gradient goes to its FIRST maximum (row-major), like PyTorch."""
    kind, winners, (x_shape, dtype, x_strides, (kh, kw), (sh, sw)) = cache
    _, _, oh, ow = pool2d_output_shape(x_shape, kernel_size=(kh, kw), stride=(sh, sw))
    dout = _gradient_in_layout(check_dout(dout, (x_shape[0], x_shape[1], oh, ow), dtype), x_shape, x_strides)
    zero = dtype.type(0)
    if kind == "2x2":
        return _maxpool2x2_backward(dout, winners, x_shape)
    argmax = winners
    dx = _zeros_like_layout(x_shape, dtype, x_strides)
    overlapping = sh < kh or sw < kw
    for offset, view in _pool_windows(dx, kh, kw, sh, sw, oh, ow):
        if overlapping:
            view += np.where(argmax == offset, dout, zero)
        else:
            # Non-overlapping windows own disjoint elements of dx, so a masked copy replaces the add.
            np.copyto(view, dout, where=argmax == offset)
    return dx


def avgpool2d_forward(x, *, kernel_size: IntPair, stride: IntPair | None = None):
    """Mean over each KH x KW window; stride defaults to kernel_size. Returns (out, cache), out (N, C, OH, OW)."""
    x, (kh, kw), (sh, sw) = check_pool_args(x, kernel_size, stride)
    _, _, oh, ow = pool2d_output_shape(x.shape, kernel_size=(kh, kw), stride=(sh, sw))
    windows = _pool_windows(x, kh, kw, sh, sw, oh, ow)
    _, first = next(windows)
    out = first.copy(order="K")
    for _, view in windows:
        out += view
    out *= x.dtype.type(1.0 / (kh * kw))
    return out, (x.shape, x.dtype, x.strides, (kh, kw), (sh, sw))


def avgpool2d_backward(dout, cache):
    """Gradient of avgpool2d_forward: each window spreads dout / (KH * KW) evenly over its elements."""
    x_shape, dtype, x_strides, (kh, kw), (sh, sw) = cache
    out_shape = pool2d_output_shape(x_shape, kernel_size=(kh, kw), stride=(sh, sw))
    dout = _gradient_in_layout(check_dout(dout, out_shape, dtype), x_shape, x_strides)
    share = dout * dtype.type(1.0 / (kh * kw))
    dx = _zeros_like_layout(x_shape, dtype, x_strides)
    for _, view in _pool_windows(dx, kh, kw, sh, sw, out_shape[2], out_shape[3]):
        view += share
    return dx


def flatten_forward(x):
    """(N, ...) -> (N, prod(...)) in row-major (C, H, W) order. Returns (out, cache)."""
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"x must have a batch axis and at least one more (N, ...), got shape {x.shape}")
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, cache):
    """Gradient of flatten_forward: reshape back to the input's shape."""
    x_shape = cache
    dout = np.asarray(dout)
    expected = (x_shape[0], int(np.prod(x_shape[1:])))
    if dout.shape != expected:
        raise ValueError(f"dout must have the forward output's shape {expected}, got {dout.shape}")
    return dout.reshape(x_shape)
