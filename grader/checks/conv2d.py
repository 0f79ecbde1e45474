"""Conv2D runs: kernels 1/2/3/5, strides 1/2/3, padding 0/1/2, batch and channels > 1, H != W, no bias, f32/f64."""

from __future__ import annotations

import numpy as np

from grader.checks import PreparedRun, Run, Variant, make_input, upcast
from reference import layers_fast as ref


def _run(case: str, x_shape, filters: int, kernel: int, stride: int | None, padding: int | None, *,
         dtype: str = "float64", bias: bool = True, aspects=("forward", "backward"), keep_input: bool = False) -> Run:
    init: dict[str, object] = {"in_channels": x_shape[1], "out_channels": filters, "kernel_size": kernel}
    if stride is not None:
        init["stride"] = stride
    if padding is not None:
        init["padding"] = padding
    return Run(id=f"conv2d.{case}", component="conv2d", case=case, aspects=tuple(aspects), x_shape=tuple(x_shape),
               dtype=dtype, init=init, options={"stride": stride or 1, "padding": padding or 0},
               weight_shape=(filters, x_shape[1], kernel, kernel), bias=bias, keep_input=keep_input)


RUNS = [
    _run("one_channel_k3", (1, 1, 5, 5), 1, 3, 1, 0),
    _run("k3_stride1_pad0", (2, 3, 6, 7), 4, 3, 1, 0),
    _run("k3_stride1_pad1", (2, 3, 6, 5), 4, 3, 1, 1),
    _run("k3_stride2_pad1", (2, 3, 7, 8), 4, 3, 2, 1),
    _run("k5_stride1_pad2", (2, 2, 8, 7), 3, 5, 1, 2),
    _run("k1_stride1_pad0", (2, 5, 4, 6), 3, 1, 1, 0),
    _run("k2_stride2_pad0", (3, 2, 6, 8), 4, 2, 2, 0),
    _run("k3_stride3_pad2_float32", (2, 3, 9, 10), 2, 3, 3, 2, dtype="float32"),
    _run("k3_stride1_pad1_float32", (2, 3, 8, 8), 4, 3, 1, 1, dtype="float32"),
    _run("no_bias", (2, 3, 5, 6), 4, 3, 1, 1, bias=False),
    _run("k5_stride2_pad1_odd", (2, 3, 11, 9), 3, 5, 2, 1, dtype="float32"),
    _run("defaults", (2, 3, 6, 5), 4, 3, None, None, aspects=("api",)),
    _run("input_unchanged", (2, 3, 5, 5), 2, 3, 1, 1, aspects=("api",), keep_input=True),
]


def _forward(x, w, b, stride, padding):
    return ref.conv2d_forward(upcast(x), upcast(w), upcast(b), stride=stride, padding=padding)


def prepare(run: Run, rng: np.random.Generator) -> PreparedRun:
    x = make_input(rng, run.x_shape, run.dtype)
    weight = make_input(rng, run.weight_shape, run.dtype)
    bias = make_input(rng, run.weight_shape[:1], run.dtype) if run.bias else None
    out, cache = _forward(x, weight, bias, run.options["stride"], run.options["padding"])
    grad = make_input(rng, out.shape, run.dtype)
    dx, dw, db = ref.conv2d_backward(upcast(grad), cache)
    inputs = {"x": x, "weight": weight, "grad": grad}
    expected = {"out": out, "dx": dx, "grad/weight": dw}
    if bias is not None:
        inputs["bias"] = bias
        expected["grad/bias"] = db
    return PreparedRun(run, inputs, expected)


def variants(prepared: PreparedRun) -> list[Variant]:
    run, inputs = prepared.run, prepared.inputs
    x, w, b, grad = (upcast(inputs.get(key)) for key in ("x", "weight", "bias", "grad"))
    stride, padding = run.options["stride"], run.options["padding"]
    found: list[Variant] = []

    def add(label, explanation, outputs):
        found.append(Variant(label, explanation, outputs))

    flipped = w[:, :, ::-1, ::-1]
    out_flipped = _forward(x, flipped, b, stride, padding)[0]
    add("flipped_kernel", "the kernel is flipped: this is a true (mathematical) convolution. Deep-learning "
        "convolution is cross-correlation: multiply patch[c, i, j] by weight[f, c, i, j] without flipping.",
        {"out": out_flipped})
    if b is not None:
        add("no_bias", "the bias is not added: add bias[f] to every output position of filter f.",
            {"out": _forward(x, w, None, stride, padding)[0]})
    if padding:
        add("padding_ignored", "the padding is ignored: pad the input with `padding` zeros on every side "
            "before sliding the window.", {"out": _forward(x, w, b, stride, 0)[0]})
        add("padding_doubled", "the input is padded with 2*padding zeros per side; pad `padding` zeros on each "
            "side (the output height is (H + 2*padding - KH) // stride + 1).",
            {"out": _forward(x, w, b, stride, 2 * padding)[0]})
    if stride != 1:
        add("stride_ignored", "the stride is ignored: move the window by `stride` positions "
            "(i_start = i * stride).", {"out": _forward(x, w, b, 1, padding)[0]})
    if w.shape[2] > 1:
        add("transposed_kernel", "the kernel's rows and columns are swapped: weight[f, c, i, j] multiplies "
            "the patch element at row i, column j.", {"out": _forward(x, w.transpose(0, 1, 3, 2), b, stride, padding)[0]})
    out = prepared.expected["out"]
    add("batch_channel_swapped", "the output's batch and channel axes are swapped: the output shape is "
        "(batch, out_channels, out_h, out_w).", {"out": out.swapaxes(0, 1)})
    if out.shape[2] != out.shape[3]:
        add("height_width_swapped", "the output's height and width are swapped.", {"out": out.swapaxes(2, 3)})
    if grad is not None and out.shape == grad.shape:
        cache = _forward(x, w, b, stride, padding)[1]
        dx_flipped = ref.conv2d_backward(grad, _forward(x, flipped, b, stride, padding)[1])[0]
        add("dx_unflipped_kernel", "the input gradient uses the kernel the wrong way round: dx gets "
            "dout[n, f, i, j] * weight[f, c, ki, kj] at the very input positions the window read in forward.",
            {"dx": dx_flipped})
        dx, dw, db = ref.conv2d_backward(grad, cache)
        n_batch = x.shape[0]
        if n_batch > 1:
            first = ref.conv2d_backward(grad[:1], _forward(x[:1], w, b, stride, padding)[1])
            last = ref.conv2d_backward(grad[-1:], _forward(x[-1:], w, b, stride, padding)[1])
            add("dw_one_sample", "the weight gradient comes from one sample only: sum the gradient over every "
                "sample of the batch (accumulate with +=).", {"grad/weight": first[1]})
            add("dw_last_sample", "the weight gradient keeps only the last sample: accumulate over the batch "
                "with += instead of assigning.", {"grad/weight": last[1]})
            add("dw_mean", "the weight gradient is averaged over the batch; the layer's gradient is the sum "
                "(the loss already takes care of the mean).", {"grad/weight": dw / n_batch})
            if db is not None:
                add("db_mean", "the bias gradient is averaged over the batch; it is the sum of dout over "
                    "batch and positions.", {"grad/bias": db / n_batch})
                add("db_one_sample", "the bias gradient comes from one sample only: sum dout over the whole "
                    "batch and every position.", {"grad/bias": first[2]})
    return found


def judge_api(prepared: PreparedRun, got: dict[str, np.ndarray], entry: dict) -> list[str]:
    """Problems with the layer's API for an ("api",) run; empty when it is fine."""
    run = prepared.run
    problems = []
    if run.case == "defaults":
        shapes = entry.get("param_shapes") or {}
        filters, channels, kernel, _ = run.weight_shape
        expected = {"weight": [filters, channels, kernel, kernel], "bias": [filters]}
        for name, shape in expected.items():
            if shapes.get(name) != shape:
                have = "no such attribute" if shapes.get(name) is None else f"shape {tuple(shapes[name])}"
                problems.append(f"after Conv2D({channels}, {filters}, kernel_size={kernel}), `self.{name}` should "
                                f"be a Tensor of shape {tuple(shape)}; found {have}.")
    if run.case == "input_unchanged" and "x_after" not in got:
        problems.append("the input x could not be read back after forward.")
    elif run.case == "input_unchanged":
        if got["x_after"].shape != tuple(run.x_shape) or not np.array_equal(got["x_after"], prepared.inputs["x"]):
            problems.append("forward changed its input x in place; compute the padded input as a new array.")
    return problems
