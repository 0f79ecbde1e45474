"""MaxPool2D and AvgPool2D runs: default stride, overlapping windows, odd sizes (floor), ties, float32/float64."""

from __future__ import annotations

import numpy as np

from grader.checks import PreparedRun, Run, Variant, make_input, upcast
from reference import layers_fast as ref


def _run(component: str, case: str, x_shape, kernel: int, stride: int | None, *, dtype: str = "float64",
         input_kind: str = "normal", aspects=("forward", "backward")) -> Run:
    init: dict[str, object] = {"kernel_size": kernel}
    if stride is not None:
        init["stride"] = stride
    return Run(id=f"{component}.{case}", component=component, case=case, aspects=tuple(aspects),
               x_shape=tuple(x_shape), dtype=dtype, init=init,
               options={"kernel_size": kernel, "stride": stride or kernel}, input_kind=input_kind)


RUNS = [
    _run("maxpool2d", "k2_stride2", (2, 3, 6, 8), 2, 2),
    _run("maxpool2d", "k2_stride1_overlap", (2, 2, 5, 6), 2, 1),
    _run("maxpool2d", "k3_stride2_overlap", (2, 3, 7, 9), 3, 2),
    _run("maxpool2d", "k3_stride1_float32", (1, 2, 6, 5), 3, 1, dtype="float32"),
    _run("maxpool2d", "k2_stride2_odd_size", (2, 3, 5, 7), 2, 2),
    _run("maxpool2d", "k2_stride2_float32", (2, 4, 8, 6), 2, 2, dtype="float32"),
    _run("maxpool2d", "ties_k2_stride2", (2, 3, 4, 6), 2, 2, input_kind="ties"),
    _run("maxpool2d", "ties_k3_stride1", (1, 2, 5, 6), 3, 1, input_kind="ties"),
    _run("maxpool2d", "default_stride", (1, 2, 7, 7), 3, None, aspects=("api",)),
    _run("avgpool2d", "k2_stride2", (2, 3, 6, 8), 2, 2),
    _run("avgpool2d", "k2_stride1_overlap", (2, 2, 5, 6), 2, 1),
    _run("avgpool2d", "k3_stride2_overlap", (2, 3, 7, 9), 3, 2),
    _run("avgpool2d", "k3_stride1_float32", (1, 2, 6, 5), 3, 1, dtype="float32"),
    _run("avgpool2d", "k2_stride2_odd_size", (2, 3, 5, 7), 2, 2),
    _run("avgpool2d", "k3_stride3_float32", (2, 2, 9, 7), 3, 3, dtype="float32"),
    _run("avgpool2d", "default_stride", (1, 2, 7, 7), 3, None, aspects=("api",)),
]

_FUNCTIONS = {
    "maxpool2d": (ref.maxpool2d_forward, ref.maxpool2d_backward),
    "avgpool2d": (ref.avgpool2d_forward, ref.avgpool2d_backward),
}


def _pool(component: str, x, grad, kernel: int, stride: int) -> dict[str, np.ndarray]:
    forward, backward = _FUNCTIONS[component]
    out, cache = forward(upcast(x), kernel_size=kernel, stride=stride)
    result = {"out": out}
    if grad is not None and grad.shape == out.shape:
        result["dx"] = backward(upcast(grad), cache)
    return result


def prepare(run: Run, rng: np.random.Generator) -> PreparedRun:
    x = make_input(rng, run.x_shape, run.dtype, run.input_kind)
    kernel, stride = run.options["kernel_size"], run.options["stride"]
    out = _pool(run.component, x, None, kernel, stride)["out"]
    grad = make_input(rng, out.shape, run.dtype)
    return PreparedRun(run, {"x": x, "grad": grad}, _pool(run.component, x, grad, kernel, stride))


def _windows(shape, kernel: int, stride: int):
    """(i, j, rows, cols) of every window, in the order a plain loop visits them."""
    _, _, height, width = shape
    for i in range((height - kernel) // stride + 1):
        for j in range((width - kernel) // stride + 1):
            yield i, j, slice(i * stride, i * stride + kernel), slice(j * stride, j * stride + kernel)


def _max_backward_variant(x, grad, kernel, stride, rule: str) -> np.ndarray:
    """Max-pool input gradients under a wrong rule: "all" tied maxima, "last" maximum, or "overwrite"."""
    dx = np.zeros_like(x)
    for i, j, rows, cols in _windows(x.shape, kernel, stride):
        window = x[:, :, rows, cols]
        peak = window.max(axis=(2, 3), keepdims=True)
        if rule == "all":
            mask = (window == peak).astype(float)
            dx[:, :, rows, cols] += mask * grad[:, :, i:i + 1, j:j + 1]
            continue
        flat = window.reshape(window.shape[0], window.shape[1], -1)
        if rule == "last":
            index = flat.shape[2] - 1 - np.argmax(flat[:, :, ::-1], axis=2)
        else:
            index = np.argmax(flat, axis=2)
        mask = np.zeros_like(flat)
        np.put_along_axis(mask, index[:, :, None], 1.0, axis=2)
        mask = mask.reshape(window.shape)
        if rule == "overwrite":
            region = dx[:, :, rows, cols]
            dx[:, :, rows, cols] = np.where(mask > 0, grad[:, :, i:i + 1, j:j + 1], region)
        else:
            dx[:, :, rows, cols] += mask * grad[:, :, i:i + 1, j:j + 1]
    return dx


def _offset_overwrite(x, grad, kernel, stride, component: str) -> np.ndarray:
    """Input gradient when a vectorized backward assigns (=) per kernel offset instead of accumulating (+=)."""
    _, _, height, width = x.shape
    out_h, out_w = (height - kernel) // stride + 1, (width - kernel) // stride + 1
    dx = np.zeros_like(x)
    if component == "maxpool2d":
        views = [x[:, :, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride]
                 for i in range(kernel) for j in range(kernel)]
        winners = np.argmax(np.stack(views), axis=0)
    for k in range(kernel * kernel):
        i, j = divmod(k, kernel)
        share = grad * (winners == k) if component == "maxpool2d" else grad / kernel**2
        dx[:, :, i:i + stride * (out_h - 1) + 1:stride, j:j + stride * (out_w - 1) + 1:stride] = share
    return dx


def _avg_backward_overwrite(x, grad, kernel, stride) -> np.ndarray:
    dx = np.zeros_like(x)
    for i, j, rows, cols in _windows(x.shape, kernel, stride):
        dx[:, :, rows, cols] = np.broadcast_to(grad[:, :, i:i + 1, j:j + 1] / kernel**2, dx[:, :, rows, cols].shape)
    return dx


def variants(prepared: PreparedRun) -> list[Variant]:
    run = prepared.run
    x, grad = upcast(prepared.inputs["x"]), upcast(prepared.inputs["grad"])
    kernel, stride = run.options["kernel_size"], run.options["stride"]
    found: list[Variant] = []
    overlapping = stride < kernel
    if run.component == "maxpool2d":
        found.append(Variant("mean_instead_of_max", "the output is the mean of each window: MaxPool2D takes the "
                             "maximum.", _pool("avgpool2d", x, grad, kernel, stride)))
        minimum = _pool("maxpool2d", -x, None, kernel, stride)["out"]
        found.append(Variant("min_instead_of_max", "the output is the minimum of each window: take the maximum.",
                             {"out": -minimum}))
        found.append(Variant("tied_maxima_all", "the gradient goes to every element equal to the window's maximum; "
                             "when several elements tie, send it only to the first maximum (row-major order), as "
                             "PyTorch does (e.g. use argmax).", {"dx": _max_backward_variant(x, grad, kernel, stride, "all")}))
        found.append(Variant("tied_maxima_last", "the gradient goes to the last maximum of a window; when several "
                             "elements tie, send it to the first one (argmax order).",
                             {"dx": _max_backward_variant(x, grad, kernel, stride, "last")}))
        found.append(Variant("gradient_spread", "the gradient is spread evenly over the window (that is average "
                             "pooling's gradient); max pooling sends it only to the position of the maximum.",
                             {"dx": _pool("avgpool2d", x, grad, kernel, stride).get("dx")}))
        if overlapping:
            for dx in (_max_backward_variant(x, grad, kernel, stride, "overwrite"),
                       _offset_overwrite(x, grad, kernel, stride, "maxpool2d")):
                found.append(Variant("overwrite_overlap", "overlapping windows overwrite each other's gradient: "
                                     "accumulate with += (an element can be the maximum of several windows).",
                                     {"dx": dx}))
    else:
        found.append(Variant("max_instead_of_mean", "the output is the maximum of each window: AvgPool2D takes the "
                             "mean.", _pool("maxpool2d", x, grad, kernel, stride)))
        exact = _pool("avgpool2d", x, grad, kernel, stride)
        found.append(Variant("sum_instead_of_mean", f"the output is the sum of each window: divide by the window "
                             f"size ({kernel}x{kernel} = {kernel * kernel}).", {"out": exact["out"] * kernel**2}))
        if "dx" in exact:
            found.append(Variant("gradient_not_divided", f"the gradient is not divided by the window size: each of "
                                 f"the {kernel * kernel} elements gets dout / {kernel * kernel}.",
                                 {"dx": exact["dx"] * kernel**2}))
        if overlapping:
            for dx in (_avg_backward_overwrite(x, grad, kernel, stride),
                       _offset_overwrite(x, grad, kernel, stride, "avgpool2d")):
                found.append(Variant("overwrite_overlap", "overlapping windows overwrite each other's gradient: "
                                     "accumulate with += (an element belongs to several windows).", {"dx": dx}))
    if stride != 1:
        found.append(Variant("stride_ignored", "the stride is ignored (the window moves by 1): move it by `stride`, "
                             "which defaults to kernel_size when not given.",
                             {"out": _pool(run.component, x, None, kernel, 1)["out"]}))
    out = prepared.expected["out"]
    found.append(Variant("batch_channel_swapped", "the output's batch and channel axes are swapped: the output "
                         "shape is (batch, channels, out_h, out_w).", {"out": out.swapaxes(0, 1)}))
    return [variant for variant in found if all(value is not None for value in variant.outputs.values())]


def judge_api(prepared: PreparedRun, got: dict[str, np.ndarray], entry: dict) -> list[str]:
    """The default-stride run: nothing beyond the output itself, which the generic comparison judges."""
    return []
