"""The speed probe's yardstick: the matrix products a vectorized training step performs, and nothing else.

Runs inside the sandbox beside the student's step (and outside, beside the reference layers) so that both are
judged against the same machine at the same moment: a step is measured in multiples of this workload, which a
busy host slows down as much as it slows the step. It is plain `np.matmul` on arrays of the right shapes filled
with noise; it computes no convolution, pooling or gradient, so nothing here is a layer a student could import.

Imports only the standard library and NumPy (it is baked into the sandbox image with the harnesses).
"""

from __future__ import annotations

import os
import time

import numpy as np

# The yardstick is the products of a step on this many images: a quarter of the usual batch of 128, so that one
# measurement costs little even on a crowded host (product time grows linearly with the rows).
YARDSTICK_BATCH = 32


def matmul_shapes(architecture: list, batch_size: int, image_shape: tuple = (3, 32, 32)) -> list[tuple[int, int, int]]:
    """(rows, inner, cols) of every product in one forward + backward pass of a vectorized network.

    A convolution as one matrix product over all windows (im2col): forward (B*Ho*Wo, C*k*k) @ (C*k*k, F),
    backward the weight gradient (F, B*Ho*Wo) @ (B*Ho*Wo, C*k*k) and the input gradient (B*Ho*Wo, F) @ (F, C*k*k).
    A linear layer likewise with B rows. Pooling, flatten and activations add no products, only shape changes.
    """
    channels, height, width = image_shape
    shapes = []
    for kind, _name, kwargs in architecture:
        if kind == "conv2d":
            k, stride, pad = kwargs.get("kernel_size", 3), kwargs.get("stride", 1), kwargs.get("padding", 0)
            height, width = (height + 2 * pad - k) // stride + 1, (width + 2 * pad - k) // stride + 1
            rows, inner, out = batch_size * height * width, channels * k * k, int(kwargs["out_channels"])
            shapes += [(rows, inner, out), (out, rows, inner), (rows, out, inner)]
            channels = out
        elif kind in ("maxpool2d", "avgpool2d"):
            k = kwargs.get("kernel_size", 2)
            stride = kwargs.get("stride") or k
            height, width = (height - k) // stride + 1, (width - k) // stride + 1
        elif kind == "linear":
            inner, out = int(kwargs["in_features"]), int(kwargs["out_features"])
            shapes += [(batch_size, inner, out), (inner, batch_size, out), (batch_size, out, inner)]
    return shapes


def workload_flops(shapes: list[tuple[int, int, int]]) -> int:
    return sum(2 * rows * inner * cols for rows, inner, cols in shapes)


class Yardstick:
    """Preallocated operands for `matmul_shapes`; `measure()` times one pass over all of them, in seconds.

    Each product is followed by the memory passes a vectorized step makes over arrays of those sizes (a copy of
    the left operand, an elementwise maximum and a column sum of the result). A step is not only multi-threaded
    BLAS: on a crowded host two BLAS threads that must run together lose far more time than single-threaded
    copies do, and a yardstick made of products alone would then make every step look cheap.
    """

    def __init__(self, shapes: list[tuple[int, int, int]], seed: int = 0):
        rng = np.random.default_rng(seed)
        self.products = []
        for rows, inner, cols in shapes:
            left = rng.standard_normal((rows, inner), dtype=np.float32)
            right = rng.standard_normal((inner, cols), dtype=np.float32)
            self.products.append((left, right, np.empty((rows, cols), dtype=np.float32), np.empty_like(left)))
        self.flops = workload_flops(shapes)

    def measure(self) -> float:
        start = time.perf_counter()
        for left, right, out, copy in self.products:
            np.matmul(left, right, out=out)
            np.copyto(copy, left)
            np.maximum(out, 0.0, out=out)
            out.sum(axis=0)
        return time.perf_counter() - start


def thread_count() -> int:
    """Threads of this process (Linux); 0 when unknown. A student thread spinning beside the yardstick slows it."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 0
