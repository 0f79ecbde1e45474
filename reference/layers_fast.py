"""Fast vectorized reference layers (channels-last im2col + one BLAS matmul per pass): what grading and training use.

Same API as `reference.layers_loop`. float32 and float64 are kept as given (mixed inputs compute in the wider
type).

Why the memory layout looks odd: every array here has the (N, C, H, W) shape of the API, but the layers store
their outputs channels-last, as (N, H, W, C) memory, and hand out an (N, C, H, W) *view* of it (a transpose).
NumPy's element-wise functions keep the memory order of their inputs, so a ReLU between two layers stays
channels-last too. In that layout
- a convolution's im2col copies runs of KW * C contiguous values (a whole kernel row across channels) instead of
  single pixels, one matmul (N*OH*OW, KH*KW*C) @ (KH*KW*C, F) yields the output already channels-last, and its
  bias rides along as one more column of ones, so no separate pass adds it;
- 2x2 pooling compares whole rows of C (columns) and of W/2 * C values (rows) at a time.
Values, shapes and dtypes are exactly those of a plain NCHW array; only `.strides` differ, and any consumer that
needs C order gets it from `np.ascontiguousarray`. Inputs in any layout are accepted (a C-order NCHW array costs
one transposing copy in the convolution's padding step).

Large element-wise passes are split by image over `reference.parallel.num_threads()` threads.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from reference.parallel import run_chunks
from reference.shapes import IntPair, check_conv_args, check_dout, check_pool_args, conv2d_output_shape
from reference.shapes import pool2d_output_shape

__all__ = [
    "conv2d_forward",
    "conv2d_backward",
    "conv2d_relu_maxpool2x2_forward",
    "conv2d_relu_maxpool2x2_backward",
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


def _channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N, H, W, C) view; contiguous when x came from this module's layers."""
    return x.transpose(0, 2, 3, 1)


def _as_nchw(x_nhwc: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> the (N, C, H, W) view the API hands out."""
    return x_nhwc.transpose(0, 3, 1, 2)


def _padded_channels_last(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """x (N, C, H, W) in any layout -> contiguous zero-padded (N, H + 2*ph, W + 2*pw, C); x itself if it already is."""
    x_nhwc = _channels_last(x)
    if ph == 0 and pw == 0 and x_nhwc.flags.c_contiguous:
        return x_nhwc
    n_batch, height, width, channels = x_nhwc.shape
    padded = np.empty((n_batch, height + 2 * ph, width + 2 * pw, channels), dtype=x.dtype)

    def copy_images(first: int, last: int) -> None:
        # Only the border is zeroed: the interior is overwritten anyway.
        block = padded[first:last]
        block[:, :ph] = 0
        block[:, ph + height:] = 0
        block[:, ph:ph + height, :pw] = 0
        block[:, ph:ph + height, pw + width:] = 0
        block[:, ph:ph + height, pw:pw + width] = x_nhwc[first:last]

    run_chunks(copy_images, n_batch, padded.size)
    return padded


def _window_view(padded: np.ndarray, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int) -> np.ndarray:
    """(N, OH, OW, KH, KW*C) strided view of contiguous padded (N, Hp, Wp, C): every window, nothing copied.

    Within one kernel row the KW * C values of a window are contiguous in channels-last memory, so the copy that
    makes columns of this view moves runs of KW * C values.
    """
    n_batch, padded_height, padded_width, channels = padded.shape
    # Strides of contiguous memory, from the shape: NumPy may report any stride for an axis of length 1.
    s_c = padded.itemsize
    s_w = channels * s_c
    s_h = padded_width * s_w
    s_n = padded_height * s_h
    return as_strided(padded, shape=(n_batch, oh, ow, kh, kw * channels), strides=(s_n, sh * s_h, sw * s_w, s_h, s_c),
                      writeable=False)


def _aligned_rows(rows: int, columns: int, dtype) -> np.ndarray:
    """Uninitialised (rows, columns) view whose rows start every 32 bytes (a padded row stride).

    OpenBLAS reads a matrix with an odd row length, such as 3*3*32 + 1 columns, measurably slower (~15% for
    conv2's weight gradient) than the same matrix with rows padded to a multiple of 32 bytes.
    """
    per_row = max(1, 32 // np.dtype(dtype).itemsize)
    return np.empty((rows, -(-columns // per_row) * per_row), dtype=dtype)[:, :columns]


def _im2col(padded: np.ndarray, kh: int, kw: int, sh: int, sw: int, oh: int, ow: int, ones_column: bool):
    """Columns (N*OH*OW, KH*KW*C [+ 1]) of padded (N, Hp, Wp, C), column order (kh, kw, c) then a column of ones."""
    n_batch, _, _, channels = padded.shape
    width = kh * kw * channels
    cols = _aligned_rows(n_batch * oh * ow, width + int(ones_column), padded.dtype)
    windows = _window_view(padded, kh, kw, sh, sw, oh, ow)
    target = cols[:, :width].reshape(n_batch, oh, ow, kh, kw * channels)
    rows_per_image = oh * ow

    def copy_images(first: int, last: int) -> None:
        target[first:last] = windows[first:last]
        if ones_column:
            cols[first * rows_per_image:last * rows_per_image, width] = 1

    run_chunks(copy_images, n_batch, cols.size)
    return cols


def _clipped_range(offset: int, stride: int, pad: int, count: int, size: int) -> tuple[slice, slice]:
    """For one kernel offset: (output positions, input positions) whose input lies inside [0, size), as slices."""
    first = max(0, -(-(pad - offset) // stride))  # first output o with o * stride + offset - pad >= 0
    last = min(count, (size - 1 + pad - offset) // stride + 1)  # one past the last with input < size
    if last <= first:
        return slice(0, 0), slice(0, 0)
    start = first * stride + offset - pad
    return slice(first, last), slice(start, start + (last - first - 1) * stride + 1, stride)


def _input_gradient(dout_rows: np.ndarray, w_matrix: np.ndarray, x_shape, kh: int, kw: int, sh: int, sw: int,
                    ph: int, pw: int, oh: int, ow: int) -> np.ndarray:
    """dx, contiguous channels-last (N, H, W, C), from dout rows (N*OH*OW, F): the transpose of the forward.

    One matmul per kernel offset, (N*OH*OW, F) @ (F, C), so that each offset's gradient is a contiguous
    (N, OH, OW, C) block; each block is then added to dx shifted by its offset, over runs of OW * C values.
    (One (N*OH*OW, KH*KW*C) matmul followed by the same adds would walk runs of only C values, several times
    slower.)
    """
    n_batch, channels, height, width = x_shape
    n_filters = w_matrix.shape[1]
    per_offset = w_matrix.reshape(kh * kw, channels, n_filters).transpose(0, 2, 1)
    blocks = np.matmul(dout_rows, per_offset).reshape(kh, kw, n_batch, oh, ow, channels)
    dx = np.zeros((n_batch, height, width, channels), dtype=dout_rows.dtype)
    ranges = [[(_clipped_range(i, sh, ph, oh, height), _clipped_range(j, sw, pw, ow, width)) for j in range(kw)]
              for i in range(kh)]

    def add_images(first: int, last: int) -> None:
        for i in range(kh):
            for j in range(kw):
                (out_rows, in_rows), (out_cols, in_cols) = ranges[i][j]
                dx[first:last, in_rows, in_cols] += blocks[i, j, first:last, out_rows, out_cols]

    run_chunks(add_images, n_batch, blocks.size)
    return dx


def _weight_matrix(w: np.ndarray) -> np.ndarray:
    """w (F, C, KH, KW) -> (KH*KW*C, F), rows in the column order of _im2col."""
    n_filters, channels, kh, kw = w.shape
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(kh * kw * channels, n_filters)


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
    n_batch = x.shape[0]
    n_filters, _, kh, kw = w.shape
    _, _, oh, ow = conv2d_output_shape(x.shape, w.shape, stride=(sh, sw), padding=(ph, pw))
    cols = _im2col(_padded_channels_last(x, ph, pw), kh, kw, sh, sw, oh, ow, ones_column=b is not None)
    w_matrix = _weight_matrix(w)
    # The bias is the last row of the matrix, against the column of ones: the matmul adds it for free.
    full_matrix = w_matrix if b is None else np.concatenate([w_matrix, b[None, :]])
    out = cols @ full_matrix
    cache = (cols, w_matrix, b is not None, x.shape, (kh, kw), (sh, sw), (ph, pw))
    return _as_nchw(out.reshape(n_batch, oh, ow, n_filters)), cache


def _rows_channels_last(array: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> (N*H*W, C) matrix of channels-last rows; a view when the memory already is channels-last."""
    return _channels_last(array).reshape(-1, array.shape[1])


def conv2d_backward(dout, cache, *, need_dx: bool = True):
    """Gradients of conv2d_forward.

    Args:
        dout: upstream gradient, shape (N, F, OH, OW).
        cache: from conv2d_forward.
        need_dx: False skips the input gradient (a network's first layer), returning None for dx.

    Returns:
        (dx, dw, db) with the shapes of x, w and b; db is None when the forward had no bias.
    """
    cols, w_matrix, has_bias, x_shape, (kh, kw), (sh, sw), (ph, pw) = cache
    n_batch, channels, _, _ = x_shape
    n_filters = w_matrix.shape[1]
    _, _, oh, ow = conv2d_output_shape(x_shape, (n_filters, channels, kh, kw), stride=(sh, sw), padding=(ph, pw))
    dout = check_dout(dout, (n_batch, n_filters, oh, ow), w_matrix.dtype)
    dout_rows = _rows_channels_last(dout)
    # One product gives dw and, from the column of ones, db.
    dw_full = cols.T @ dout_rows
    width = kh * kw * channels
    dw = np.ascontiguousarray(dw_full[:width].reshape(kh, kw, channels, n_filters).transpose(3, 2, 0, 1))
    db = dw_full[width].copy() if has_bias else None
    if not need_dx:
        return None, dw, db
    dx = _input_gradient(dout_rows, w_matrix, x_shape, kh, kw, sh, sw, ph, pw, oh, ow)
    return _as_nchw(dx), dw, db


def conv2d_relu_maxpool2x2_forward(x, w, b, *, padding: IntPair = 0):
    """maxpool2d(relu(conv2d(x, w, b, stride=1, padding)), kernel_size=2) in one pass: a network's first block.

    Same values as the three layers one after the other, faster: the im2col rows are ordered (a, b, n, i, j), conv
    output pixel (2i + a, 2j + b), so the matmul leaves the four members of every pooling window in four
    contiguous blocks, and pooling is three element-wise maxima over whole blocks instead of strided passes. Conv
    outputs that no window covers (an odd last row or column) are never computed.

    Args:
        x: input, shape (N, C, H, W).
        w: filters, shape (F, C, KH, KW).
        b: bias, shape (F,), or None.
        padding: int or (ph, pw).

    Returns:
        (out, cache): out of shape (N, F, OH // 2, OW // 2), OH and OW the convolution's output size.
    """
    x, w, b, _, (ph, pw) = check_conv_args(x, w, b, 1, padding)
    n_batch = x.shape[0]
    n_filters, channels, kh, kw = w.shape
    _, _, oh, ow = conv2d_output_shape(x.shape, w.shape, stride=1, padding=(ph, pw))
    pooled_h, pooled_w = oh // 2, ow // 2
    if pooled_h == 0 or pooled_w == 0:
        raise ValueError(f"the convolution's output {oh}x{ow} is too small for a 2x2 pool")
    cols, rows = _pooled_window_columns(x, kh, kw, ph, pw, pooled_h, pooled_w, has_bias=b is not None)
    w_matrix = _weight_matrix(w)
    full_matrix = w_matrix if b is None else np.concatenate([w_matrix, b[None, :]])
    conv = (cols @ full_matrix).reshape(4, rows, n_filters)
    out, (right_top, right_bottom, bottom) = _relu_maxpool_blocks(conv, n_batch)
    cache = (cols, w_matrix, b is not None, x.shape, (kh, kw), (ph, pw), out, (right_top, right_bottom, bottom))
    return _as_nchw(out.reshape(n_batch, pooled_h, pooled_w, n_filters)), cache


def _pooled_window_columns(x, kh, kw, ph, pw, pooled_h, pooled_w, *, has_bias):
    """im2col of x (N, C, H, W) with rows ordered (a, b, n, i, j) for conv output pixel (2i + a, 2j + b).

    Returns (cols, rows): cols of shape (4 * rows, KH * KW * C [+ 1 column of ones when has_bias]), rows =
    N * pooled_h * pooled_w, so each of the four members of a 2x2 pooling window fills one block of rows.
    """
    n_batch, channels = x.shape[:2]
    padded = _padded_channels_last(x, ph, pw)
    width = kh * kw * channels
    rows = n_batch * pooled_h * pooled_w
    cols = _aligned_rows(4 * rows, width + int(has_bias), x.dtype)
    s_c = padded.itemsize
    s_w = channels * s_c
    s_h = padded.shape[2] * s_w
    s_n = padded.shape[1] * s_h
    windows = as_strided(padded, shape=(2, 2, n_batch, pooled_h, pooled_w, kh, kw * channels),
                         strides=(s_h, s_w, s_n, 2 * s_h, 2 * s_w, s_h, s_c), writeable=False)
    target = cols[:, :width].reshape(2, 2, n_batch, pooled_h, pooled_w, kh, kw * channels)
    per_image = pooled_h * pooled_w

    def copy_images(first: int, last: int) -> None:
        target[:, :, first:last] = windows[:, :, first:last]
        if has_bias:
            for block in range(4):
                cols[block * rows + first * per_image:block * rows + last * per_image, width] = 1

    run_chunks(copy_images, n_batch, cols.size)
    return cols, rows


def _relu_maxpool_blocks(conv, n_batch):
    """relu of the 2x2 max over conv's four blocks (4, rows, F), and the winner maps the backward needs.

    Returns (out, (right_top, right_bottom, bottom)), each of shape (rows, F).
    """
    _, rows, n_filters = conv.shape
    out = np.empty((rows, n_filters), dtype=conv.dtype)
    # Winner maps, PyTorch's first-maximum rule over the window order (0,0), (0,1), (1,0), (1,1).
    right_top = np.empty((rows, n_filters), dtype=bool)
    right_bottom = np.empty((rows, n_filters), dtype=bool)
    bottom = np.empty((rows, n_filters), dtype=bool)
    top_max = np.empty((rows, n_filters), dtype=conv.dtype)
    per_chunk = rows // n_batch

    def pool_images(first: int, last: int) -> None:
        part = slice(first * per_chunk, last * per_chunk)
        y00, y01, y10, y11 = conv[0, part], conv[1, part], conv[2, part], conv[3, part]
        np.greater(y01, y00, out=right_top[part])
        np.maximum(y00, y01, out=top_max[part])
        np.greater(y11, y10, out=right_bottom[part])
        bottom_max = np.maximum(y10, y11)
        np.greater(bottom_max, top_max[part], out=bottom[part])
        np.maximum(top_max[part], bottom_max, out=out[part])
        np.maximum(out[part], 0, out=out[part])

    run_chunks(pool_images, n_batch, conv.size)
    return out, (right_top, right_bottom, bottom)


def conv2d_relu_maxpool2x2_backward(dout, cache, *, need_dx: bool = True):
    """Gradients of conv2d_relu_maxpool2x2_forward: (dx, dw, db); dx is None when need_dx is False."""
    cols, w_matrix, has_bias, x_shape, (kh, kw), (ph, pw), out, (right_top, right_bottom, bottom) = cache
    n_batch, channels, height, width = x_shape
    rows, n_filters = out.shape
    _, _, oh, ow = conv2d_output_shape(x_shape, (n_filters, channels, kh, kw), stride=1, padding=(ph, pw))
    pooled_h, pooled_w = oh // 2, ow // 2
    dout = check_dout(dout, (n_batch, n_filters, pooled_h, pooled_w), w_matrix.dtype)
    dout_rows = _rows_channels_last(dout)
    dconv = np.empty((4, rows, n_filters), dtype=w_matrix.dtype)
    per_chunk = rows // n_batch

    def route_images(first: int, last: int) -> None:
        part = slice(first * per_chunk, last * per_chunk)
        grad = dout_rows[part] * (out[part] > 0)
        low = bottom[part]
        for pair, pair_grad, right in ((0, grad * ~low, right_top[part]), (1, grad * low, right_bottom[part])):
            np.multiply(pair_grad, ~right, out=dconv[2 * pair, part])
            np.multiply(pair_grad, right, out=dconv[2 * pair + 1, part])

    run_chunks(route_images, n_batch, dconv.size)
    dconv_rows = dconv.reshape(4 * rows, n_filters)
    dw_full = cols.T @ dconv_rows
    k = kh * kw * channels
    dw = np.ascontiguousarray(dw_full[:k].reshape(kh, kw, channels, n_filters).transpose(3, 2, 0, 1))
    db = dw_full[k].copy() if has_bias else None
    if not need_dx:
        return None, dw, db
    # Rare path (a first layer needs no dx): the conv output's gradient in natural order, zero outside windows.
    dconv_full = np.zeros((n_batch, oh, ow, n_filters), dtype=w_matrix.dtype)
    blocks = dconv.reshape(2, 2, n_batch, pooled_h, pooled_w, n_filters)
    for a in range(2):
        for bb in range(2):
            dconv_full[:, a:2 * pooled_h:2, bb:2 * pooled_w:2] = blocks[a, bb]
    dx = _input_gradient(dconv_full.reshape(-1, n_filters), w_matrix, x_shape, kh, kw, 1, 1, ph, pw, oh, ow)
    return _as_nchw(dx), dw, db


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
    if (kh, kw) == (2, 2) and (sh, sw) == (2, 2):
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


def _maxpool2x2_forward(x: np.ndarray, layout):
    """The common 2x2 stride-2 pool, separably and channels-last: max of column pairs, then of row pairs.

    In (N, H, W, C) memory a column pair is two runs of C values side by side and a row pair two runs of
    W/2 * C values, so each step is one NumPy pass over long runs. Ties: the right column wins only if strictly
    larger, then the lower row only if strictly larger, which is PyTorch's first-maximum rule. The two boolean
    maps of winners are what the backward pass needs. An odd last row or column is outside every window.
    """
    n_batch, channels, height, width = x.shape
    oh, ow = height // 2, width // 2
    x_nhwc = _channels_last(x)[:, :2 * oh, :2 * ow]
    column_max = np.empty((n_batch, 2 * oh, ow, channels), dtype=x.dtype)
    right_wins = np.empty((n_batch, 2 * oh, ow, channels), dtype=bool)
    out = np.empty((n_batch, oh, ow, channels), dtype=x.dtype)
    lower_wins = np.empty((n_batch, oh, ow, channels), dtype=bool)

    def pool_images(first: int, last: int) -> None:
        block = x_nhwc[first:last]
        left, right = block[:, :, 0::2], block[:, :, 1::2]
        np.greater(right, left, out=right_wins[first:last])
        np.maximum(left, right, out=column_max[first:last])
        upper, lower = column_max[first:last, 0::2], column_max[first:last, 1::2]
        np.greater(lower, upper, out=lower_wins[first:last])
        np.maximum(upper, lower, out=out[first:last])

    run_chunks(pool_images, n_batch, x.size)
    return _as_nchw(out), ("2x2", (right_wins, lower_wins), layout)


def _maxpool2x2_backward(dout: np.ndarray, winners, x_shape, dtype) -> np.ndarray:
    """dx, channels-last, for `_maxpool2x2_forward` from dout (N, C, OH, OW) and the forward's winner maps."""
    right_wins, lower_wins = winners
    n_batch, channels, height, width = x_shape
    oh, ow = height // 2, width // 2
    dout_nhwc = _channels_last(dout)
    odd = height % 2 or width % 2
    dx = (np.zeros if odd else np.empty)((n_batch, height, width, channels), dtype=dtype)

    def route_images(first: int, last: int) -> None:
        grad, lower = dout_nhwc[first:last], lower_wins[first:last]
        for row, row_grad in ((0, grad * ~lower), (1, grad * lower)):
            right = right_wins[first:last, row::2]
            np.multiply(row_grad, right, out=dx[first:last, row:2 * oh:2, 1:2 * ow:2])
            np.multiply(row_grad, ~right, out=dx[first:last, row:2 * oh:2, 0:2 * ow:2])

    run_chunks(route_images, n_batch, dx.size)
    return _as_nchw(dx)


def _zeros_like_layout(shape, dtype, strides) -> np.ndarray:
    """Zeros of (N, C, H, W) `shape`, stored channels-last if `strides` were."""
    n_batch, channels, height, width = shape
    if _is_channels_last(shape, strides):
        return _as_nchw(np.zeros((n_batch, height, width, channels), dtype=dtype))
    return np.zeros(shape, dtype=dtype)


def _is_channels_last(shape, strides) -> bool:
    """Whether an (N, C, H, W) array with these strides keeps its channels innermost in memory."""
    return shape[1] > 1 and shape[3] > 1 and strides[1] < strides[3]


def _gradient_in_layout(dout: np.ndarray, x_shape, x_strides) -> np.ndarray:
    """dout laid out like the forward input, so element-wise passes walk both arrays in the same memory order."""
    if _is_channels_last(x_shape, x_strides) and not _is_channels_last(dout.shape, dout.strides):
        return _as_nchw(np.ascontiguousarray(_channels_last(dout)))
    return dout


def maxpool2d_backward(dout, cache):
    """Gradient of maxpool2d_forward: each window's gradient goes to its FIRST maximum (row-major), like PyTorch."""
    kind, winners, (x_shape, dtype, x_strides, (kh, kw), (sh, sw)) = cache
    _, _, oh, ow = pool2d_output_shape(x_shape, kernel_size=(kh, kw), stride=(sh, sw))
    dout = check_dout(dout, (x_shape[0], x_shape[1], oh, ow), dtype)
    if kind == "2x2":
        return _maxpool2x2_backward(dout, winners, x_shape, dtype)
    dout = _gradient_in_layout(dout, x_shape, x_strides)
    zero = dtype.type(0)
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
