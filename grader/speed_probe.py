"""Speed-probe feedback: compare the student's per-layer milliseconds (timed in the sandbox) with the reference's.

Both sides are measured against the same yardstick (sandbox/harness/calibration.py: the matrix products of a
vectorized step). In the sandbox each layer is timed on the full batch right after one yardstick measurement; here
the reference layer is timed on the same shapes interleaved with the same yardstick. A layer's cost is its time in
yardsticks, so the ratio the student reads ("your Conv2D backward is 300x slower than a vectorized one") does not
depend on how busy either machine was, and the vectorized figure is shown in the student's own machine's
milliseconds of that moment.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np

from reference import layers_fast
from sandbox.harness.calibration import YARDSTICK_BATCH, Yardstick, matmul_shapes

STUDENT_KINDS = {"conv2d": "Conv2D", "maxpool2d": "MaxPool2D", "avgpool2d": "AvgPool2D", "flatten": "Flatten"}
HINTS = {
    "conv2d": "gather all windows at once (im2col: one strided copy per kernel offset) and use one matrix "
              "multiply per pass instead of Python loops over output positions",
    "maxpool2d": "reshape the input into windows and take max/argmax over the window axes instead of looping",
    "avgpool2d": "reshape into windows and average over the window axes instead of looping",
    "flatten": "a reshape is enough: no copy, no loop",
}


def _reference_phases(kind: str, input_shape: tuple[int, ...], kwargs: dict):
    """(forward(), backward(out, cache)) of the fast reference layer on random float32 input, or None."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(np.float32)
    if kind == "conv2d":
        k = int(kwargs.get("kernel_size", 3))
        w = rng.standard_normal((int(kwargs["out_channels"]), input_shape[1], k, k)).astype(np.float32)
        b = np.zeros(int(kwargs["out_channels"]), dtype=np.float32)
        stride, padding = kwargs.get("stride", 1), kwargs.get("padding", 0)
        return (lambda: layers_fast.conv2d_forward(x, w, b, stride=stride, padding=padding),
                lambda out, cache: layers_fast.conv2d_backward(np.ones_like(out), cache))
    if kind in ("maxpool2d", "avgpool2d"):
        size, stride = kwargs.get("kernel_size", 2), kwargs.get("stride")
        forward_fn = layers_fast.maxpool2d_forward if kind == "maxpool2d" else layers_fast.avgpool2d_forward
        backward_fn = layers_fast.maxpool2d_backward if kind == "maxpool2d" else layers_fast.avgpool2d_backward
        return (lambda: forward_fn(x, kernel_size=size, stride=stride),
                lambda out, cache: backward_fn(np.ones_like(out), cache))
    if kind == "flatten":
        return (lambda: layers_fast.flatten_forward(x),
                lambda out, cache: layers_fast.flatten_backward(np.ones_like(out), cache))
    return None


@lru_cache(maxsize=4)
def _yardstick(architecture_items: tuple) -> Yardstick:
    architecture = [[kind, name, dict(kwargs)] for kind, name, kwargs in architecture_items]
    return Yardstick(matmul_shapes(architecture, YARDSTICK_BATCH))


@lru_cache(maxsize=64)
def reference_layer_units(kind: str, input_shape: tuple[int, ...], kwargs_items: tuple, architecture_items: tuple,
                          repeats: int = 2) -> tuple[float, float] | None:
    """(forward, backward) of the fast reference layer on `input_shape`, in yardsticks of that architecture.

    Yardstick, forward, backward, yardstick, ...: each phase is divided by the faster of its two neighbouring
    yardsticks and the smallest ratio is kept (on a shared host other jobs only ever add time).
    """
    phases = _reference_phases(kind, input_shape, dict(kwargs_items))
    if phases is None:
        return None
    forward, backward = phases
    yardstick = _yardstick(architecture_items)
    forward_units, backward_units = [], []
    before = yardstick.measure()
    for _ in range(repeats):
        start = time.perf_counter()
        out, cache = forward()
        forward_seconds = time.perf_counter() - start
        start = time.perf_counter()
        backward(out, cache)
        backward_seconds = time.perf_counter() - start
        after = yardstick.measure()
        forward_units.append(forward_seconds / min(before, after))
        backward_units.append(backward_seconds / min(before, after))
        before = after
    return min(forward_units), min(backward_units)


def architecture_key(architecture: Sequence) -> tuple:
    return tuple((kind, name, tuple(sorted(kwargs.items()))) for kind, name, kwargs in architecture)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "an unknown time"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.2f} ms"


def explain(stopped: Mapping, layers: Sequence[Mapping], architecture: Sequence, *, batch_size: int) -> dict:
    """The student's message and a per-layer table (rows) for a run stopped by the speed probe."""
    kwargs_by_name = {name: kwargs for _kind, name, kwargs in architecture}
    rows = [_row(layer, kwargs_by_name, architecture_key(architecture)) for layer in layers]

    projected, budget = stopped.get("projected_s"), stopped.get("budget_s")
    if stopped.get("lower_bound"):
        lines = [f"Training was stopped by the speed probe: {stopped.get('detail') or 'one batch was too slow'}; at "
                 f"that pace training would take more than {_duration(projected)} on this machine, against a budget "
                 f"of {_duration(budget)}."]
    else:
        over = f", {projected / budget:.1f}x the budget" if projected and budget else ""
        lines = [f"Training was stopped by the speed probe: at this speed the run would take about "
                 f"{_duration(projected)}{over} of {_duration(budget)} (times of an idle grading machine: each step "
                 f"was measured against a fixed amount of matrix arithmetic timed beside it, so a busy machine does "
                 f"not count against you)."]
    findings = []
    for row in rows:
        if not row["student"]:
            continue
        label = f"{STUDENT_KINDS.get(row['kind'], row['kind'])} {row['layer']}"
        estimated = (f" (measured on {row['samples']} images)" if row.get("samples") not in (None, batch_size)
                     else "")
        for phase in ("forward", "backward"):
            mine, ref = row.get(f"{phase}_ms"), row.get(f"reference_{phase}_ms")
            if mine is None and row.get("status") == "timeout" and row.get("timed_out") == phase:
                limit = row.get("at_least_ms")
                text = f"your {label} {phase} did not finish within the probe's limit"
                if limit:
                    text += f": more than {_ms(limit)} per batch of {batch_size}{estimated}"
                    if ref:
                        text += f" vs {_ms(ref)} for a vectorized one, over {limit / max(ref, 1e-3):,.0f}x slower"
                findings.append((float("inf"), text, row["kind"]))
                continue
            if mine is None or not ref:
                continue
            ratio = row[f"{phase}_ratio"]
            if ratio >= 1.5 and mine - ref >= 1.0:  # sub-millisecond differences are timer noise
                text = (f"your {label} {phase} takes {_ms(mine)} per batch of {batch_size}{estimated} vs {_ms(ref)} "
                        f"for a vectorized one: {ratio:,.0f}x slower")
                findings.append((mine - ref, text, row["kind"]))
            else:
                findings.append((-1.0, f"your {label} {phase}: {_ms(mine)} (vectorized: {_ms(ref)}), fine",
                                 row["kind"]))
    findings.sort(key=lambda item: item[0], reverse=True)
    if findings:
        lines.append("Where the time goes (each layer timed alone on the same batch):")
        lines.extend(f"  - {text}" for _, text, _ in findings[:8])
        worst_kind = findings[0][2]
        if findings[0][0] > 0 and worst_kind in HINTS:
            lines.append(f"Biggest win: {STUDENT_KINDS[worst_kind]}: {HINTS[worst_kind]}.")
    else:
        lines.append("No per-layer timings came back.")
    return {"message": "\n".join(lines), "rows": rows}


def _row(layer: Mapping, kwargs_by_name: Mapping, architecture_items: tuple) -> dict:
    """One table row: the student's full-batch timings, and a vectorized layer's at the same yardstick."""
    kind, name = layer.get("kind", ""), layer.get("name", "")
    row = {"layer": name, "kind": kind, "student": bool(layer.get("student")), "status": layer.get("status"),
           "timed_out": layer.get("timed_out"), "samples": layer.get("samples"),
           "forward_ms": layer.get("forward_ms"), "backward_ms": layer.get("backward_ms"),
           "calibration_ms": layer.get("calibration_ms")}
    if layer.get("status") == "timeout":
        row["at_least_ms"] = layer.get("limit_ms")
    shape = tuple(int(n) for n in layer.get("input_shape", []))
    yardstick_ms = layer.get("calibration_ms")
    if kind not in STUDENT_KINDS or len(shape) != 4 or name not in kwargs_by_name or not yardstick_ms:
        return row
    units = reference_layer_units(kind, shape, tuple(sorted(kwargs_by_name[name].items())), architecture_items)
    if units is None:
        return row
    for phase, unit in zip(("forward", "backward"), units):
        reference = unit * yardstick_ms
        row[f"reference_{phase}_ms"] = round(reference, 3)
        mine = row.get(f"{phase}_ms")
        if mine is not None and reference:
            row[f"{phase}_ratio"] = round(mine / max(reference, 1e-3), 1)
    return row
