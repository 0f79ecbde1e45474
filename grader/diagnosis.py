"""Comparing a student's output with the reference, and naming the mistake when the output matches a known one."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from grader.checks import PreparedRun, variants

# Element-wise tolerance: |got - expected| <= RTOL * |expected| + ATOL * max|expected|. Generous next to
# the errors real mistakes make (order 1), tight enough for a float32 sum of a few thousand terms.
TOLERANCES = {"float64": (1e-6, 1e-7), "float32": (1e-3, 1e-4)}


@dataclass(frozen=True)
class Comparison:
    """How a student's array compares with the expected one."""

    ok: bool
    message: str
    max_abs: float = float("nan")
    max_rel: float = float("nan")


@dataclass(frozen=True)
class Tolerance:
    """What `compare` allows around one expected array: the same for every submission, so worked out once.

    Fields:
        scale: the largest |expected| (at least 1e-12).
        limit: per element, the largest |got - expected| that still counts as equal.
        floor: the smallest element of `limit`: an error no larger anywhere is within it everywhere.
    """

    scale: float
    limit: np.ndarray
    floor: float = 0.0


def tolerance(expected: np.ndarray, dtype: str) -> Tolerance:
    """The tolerance of a non-empty expected array for a run computed in `dtype`."""
    rtol, atol = TOLERANCES[dtype]
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    limit = rtol * np.abs(expected) + atol * scale
    return Tolerance(scale, limit, float(limit.min()))


def close(expected: np.ndarray, got: np.ndarray, dtype: str) -> bool:
    if expected.shape != got.shape:
        return False
    rtol, atol = TOLERANCES[dtype]
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.all(np.abs(got - expected) <= rtol * np.abs(expected) + atol * max(scale, 1e-12)))


def compare(expected: np.ndarray, got: np.ndarray, dtype: str, allowed: Tolerance | None = None) -> Comparison:
    """Compare shapes, then values; the message gives the largest errors and the first mismatching index.

    `allowed` is `tolerance(expected, dtype)`, when the caller keeps it for the next submission.
    """
    if got.shape != expected.shape:
        return Comparison(False, f"expected shape {_shape(expected.shape)}, got {_shape(got.shape)}")
    if expected.size == 0:
        return Comparison(True, "")
    allowed = allowed or tolerance(expected, dtype)
    with np.errstate(all="ignore"):
        error = got - expected
    np.abs(error, out=error)  # in place: the arrays of a SimpleCNN grade are megabytes
    max_abs = float(error.max())
    if max_abs <= allowed.floor and math.isfinite(max_abs):
        # Within the tolerance everywhere, and every value of `got` finite: max propagates NaN, and an infinity in
        # `got` (or in `expected`) makes an error infinite or NaN. One pass instead of four for a right answer.
        return Comparison(True, "", max_abs, max_abs / allowed.scale)
    return _compare_values(expected, got, allowed, error, max_abs)


def _compare_values(expected: np.ndarray, got: np.ndarray, allowed: Tolerance, error: np.ndarray,
                    max_abs: float) -> Comparison:
    """`compare` once the values are not all within the tolerance's floor: `error` is |got - expected|."""
    if not np.all(np.isfinite(got)):
        index = tuple(int(i) for i in np.argwhere(~np.isfinite(got))[0])
        return Comparison(False, f"shape {_shape(got.shape)} is right, but the values contain NaN or inf "
                                 f"(first at index {list(index)})")
    bad = error > allowed.limit
    max_rel = max_abs / allowed.scale
    if not bad.any():
        return Comparison(True, "", max_abs, max_rel)
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    count = int(bad.sum())
    return Comparison(False, f"shape {_shape(got.shape)} is right, but {count} of {bad.size} values differ; "
                             f"max abs error {max_abs:.3g} (relative to the largest expected value: {max_rel:.3g}); "
                             f"first mismatch at index {list(index)}: expected {expected[index]:.6g}, "
                             f"got {got[index]:.6g}", max_abs, max_rel)


def diagnose(prepared: PreparedRun, key: str, got: np.ndarray) -> str | None:
    """A likely cause when `got` (for output `key`) matches a known mistake, or None."""
    expected = prepared.expected[key]
    dtype = prepared.run.dtype
    for variant in variants(prepared):
        candidate = variant.outputs.get(key)
        if candidate is None or candidate.shape != got.shape:
            continue
        if close(candidate, expected, dtype):
            continue  # on these inputs the mistake makes no difference, so it cannot be the cause
        if close(candidate, got, dtype):
            return variant.explanation
    return generic_diagnosis(expected, got, dtype)


def generic_diagnosis(expected: np.ndarray, got: np.ndarray, dtype: str) -> str | None:
    """Patterns that need no model of the layer: all zeros, a constant factor, a transpose."""
    if got.shape == expected.shape and got.size and np.all(np.isfinite(got)):
        if not np.any(got) and np.any(expected):
            return "every value is zero: is the result computed at all (or is the gradient never accumulated)?"
        denominator = float(np.vdot(expected, expected))
        if denominator > 0:
            factor = float(np.vdot(expected, got)) / denominator
            if abs(factor - 1.0) > 1e-3 and abs(factor) > 1e-6 and close(expected * factor, got, dtype):
                if abs(factor + 1.0) < 1e-3:
                    return "the values have the wrong sign."
                return f"the values are exactly {factor:.4g} times the expected ones: a missing or extra factor."
    if got.ndim == expected.ndim and got.shape != expected.shape and sorted(got.shape) == sorted(expected.shape):
        for axes in _permutations(got.ndim):
            if tuple(got.shape[a] for a in axes) == expected.shape:
                if close(expected, np.transpose(got, axes), dtype):
                    return f"the values are right but the axes are in a different order (your axes {list(axes)} " \
                           f"would give the expected layout {_shape(expected.shape)})."
    if got.shape != expected.shape and got.size == expected.size:
        if close(expected, got.reshape(expected.shape), dtype):
            return f"the values are right but the shape is not: reshape to {_shape(expected.shape)}."
    return None


def _permutations(ndim: int):
    from itertools import permutations

    return [axes for axes in permutations(range(ndim)) if axes != tuple(range(ndim))]


def _shape(shape) -> str:
    return str(tuple(int(n) for n in shape))
