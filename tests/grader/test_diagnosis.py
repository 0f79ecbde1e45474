"""Comparison messages and diagnoses, on the reference's own outputs with planted mistakes."""

from __future__ import annotations

import numpy as np
import pytest

from grader.stages.correctness import prepared_runs
from grader import diagnosis
from grader.diagnosis import compare, diagnose, generic_diagnosis


@pytest.fixture(scope="module")
def runs(spec):
    return {prepared.run.id: prepared for prepared in prepared_runs(spec.correctness.seed)}


def test_compare_reports_shape_errors_and_first_mismatch():
    expected = np.arange(12, dtype=float).reshape(3, 4)
    assert compare(expected, expected.T, "float64").message == "expected shape (3, 4), got (4, 3)"
    got = expected.copy()
    got[1, 2] += 1.0
    result = compare(expected, got, "float64")
    assert not result.ok
    assert "1 of 12 values differ" in result.message and "index [1, 2]" in result.message
    assert result.max_abs == pytest.approx(1.0)
    assert compare(expected, expected + 1e-9, "float64").ok
    assert "NaN" in compare(expected, expected * np.nan, "float64").message


def test_float32_tolerance_accepts_float32_rounding(runs):
    prepared = runs["conv2d.k3_stride1_pad1_float32"]
    rounded = prepared.expected["out"].astype(np.float32).astype(np.float64)
    assert compare(prepared.expected["out"], rounded, "float32").ok


def test_generic_patterns():
    expected = np.random.default_rng(0).standard_normal((2, 3, 4))
    assert "wrong sign" in generic_diagnosis(expected, -expected, "float64")
    assert "0.5 times" in generic_diagnosis(expected, expected * 0.5, "float64")
    assert "every value is zero" in generic_diagnosis(expected, np.zeros_like(expected), "float64")
    assert "axes" in generic_diagnosis(expected, expected.transpose(2, 0, 1), "float64")
    assert "reshape" in generic_diagnosis(expected, expected.reshape(6, 4), "float64")
    assert generic_diagnosis(expected, expected + 1.0, "float64") is None


def test_mistake_that_makes_no_difference_is_not_named(runs):
    prepared = runs["maxpool2d.k2_stride2"]  # no ties: every tie rule gives the right gradient here
    wrong = prepared.expected["dx"] * 3.0
    message = diagnose(prepared, "dx", wrong)
    assert message is not None and "tie" not in message and "3 times" in message


@pytest.mark.parametrize("run_id, key, make, phrase", [
    ("conv2d.k3_stride2_pad1", "out", lambda p: p.expected["out"].swapaxes(0, 1), "batch and channel axes"),
    ("maxpool2d.ties_k2_stride2", "dx", None, "first maximum"),
    ("avgpool2d.k2_stride2", "out", lambda p: p.expected["out"] * 4, "sum of each window"),
    ("flatten.batch2", "out", lambda p: p.inputs["x"].transpose(0, 3, 2, 1).reshape(2, -1), "column-major"),
])
def test_known_mistakes_are_named(runs, run_id, key, make, phrase):
    prepared = runs[run_id]
    if make is None:
        from grader.checks.pooling import _max_backward_variant

        x = prepared.inputs["x"].astype(np.float64)
        got = _max_backward_variant(x, prepared.inputs["grad"].astype(np.float64), 2, 2, "all")
    else:
        got = make(prepared)
    assert phrase in (diagnose(prepared, key, got) or "")


def test_the_one_pass_verdict_is_the_full_comparisons(spec):
    """compare's shortcut (the largest error within the smallest limit) must say what the full element-wise
    comparison says, for right answers, answers at the edge of the tolerance, wrong ones and non-finite ones."""
    rng = np.random.default_rng(14)
    shortcuts = 0
    for trial in range(400):
        dtype = ("float64", "float32")[trial % 2]
        expected = rng.standard_normal((3, 5)) * 10.0 ** rng.integers(-3, 4)
        if trial % 17 == 0:
            expected[0, 0] = 0.0
        allowed = diagnosis.tolerance(expected, dtype)
        scale = rng.choice([0.0, 0.5, 0.99, 1.0, 1.01, 2.0, 1e3])
        got = expected + rng.choice([-1, 1], expected.shape) * allowed.limit * scale * rng.random(expected.shape)
        if trial % 5 == 0:
            got.flat[rng.integers(got.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e308])
        if trial % 23 == 0:
            expected = expected.copy()
            expected.flat[rng.integers(expected.size)] = rng.choice([np.nan, np.inf])
            allowed = diagnosis.tolerance(expected, dtype)
        with np.errstate(all="ignore"):
            error = np.abs(got - expected)
            full = diagnosis._compare_values(expected, got, allowed, error, float(error.max()))
        result = compare(expected, got, dtype, allowed)
        shortcuts += float(error.max()) <= allowed.floor
        assert (result.ok, result.message) == (full.ok, full.message)
        assert result.max_abs == full.max_abs or (np.isnan(result.max_abs) and np.isnan(full.max_abs))
    assert 30 < shortcuts < 370  # both paths were taken
