"""Flatten runs: (N, C, H, W) -> (N, C*H*W) in row-major order, and its gradient reshaped back.

Depending on the assignment the step is a `Flatten` class, a module-level `flatten(x)` function, or not graded.
"""

from __future__ import annotations

import numpy as np

from dataclasses import replace

from grader.checks import CatalogueOptions, PreparedRun, Run, Variant, make_input, upcast
from reference import layers_fast as ref

RUNS = [
    Run(id="flatten.batch2", component="flatten", case="batch2", x_shape=(2, 3, 4, 5)),
    Run(id="flatten.float32", component="flatten", case="float32", x_shape=(3, 2, 3, 2), dtype="float32"),
    Run(id="flatten.one_sample", component="flatten", case="one_sample", x_shape=(1, 4, 3, 3)),
]


def runs(options: CatalogueOptions) -> list[Run]:
    if options.flatten == "none":
        return []
    if options.flatten == "function":
        return [replace(run, call="function") for run in RUNS]
    return list(RUNS)


def _flatten(x, grad) -> dict[str, np.ndarray]:
    out, cache = ref.flatten_forward(upcast(x))
    result = {"out": out}
    if grad is not None and grad.shape == out.shape:
        result["dx"] = ref.flatten_backward(upcast(grad), cache)
    return result


def prepare(run: Run, rng: np.random.Generator) -> PreparedRun:
    x = make_input(rng, run.x_shape, run.dtype)
    grad = make_input(rng, _flatten(x, None)["out"].shape, run.dtype)
    return PreparedRun(run, {"x": x, "grad": grad}, _flatten(x, grad))


def variants(prepared: PreparedRun) -> list[Variant]:
    x, grad = upcast(prepared.inputs["x"]), upcast(prepared.inputs["grad"])
    n_batch = x.shape[0]
    channels_last = x.transpose(0, 2, 3, 1).reshape(n_batch, -1)
    column_major = x.transpose(0, 3, 2, 1).reshape(n_batch, -1)
    return [
        Variant("channels_last", "the features are flattened in (H, W, C) order; flatten each sample in "
                "(C, H, W) row-major order, like x.reshape(N, -1).",
                {"out": channels_last,
                 "dx": grad.reshape(n_batch, *x.shape[2:], x.shape[1]).transpose(0, 3, 1, 2)}),
        Variant("column_major", "the features are flattened in column-major (Fortran) order; use row-major "
                "order, like x.reshape(N, -1).",
                {"out": column_major,
                 "dx": grad.reshape(n_batch, *x.shape[:0:-1]).transpose(0, 3, 2, 1)}),
        Variant("batch_flattened", "the batch axis was flattened too: keep it, the output shape is "
                "(N, C*H*W).", {"out": x.reshape(1, -1)}),
    ]


def judge_api(prepared: PreparedRun, got: dict[str, np.ndarray], entry: dict) -> list[str]:
    return []
