"""The service benchmarks' own logic: percentiles, the integrity verdict, the shortened training spec."""

from __future__ import annotations

from bench.mixed_load import training_spec
from bench.service_stack import integrity_ok, percentile, summary
from grader.spec import parse_spec


def test_percentile_is_nearest_rank_and_summary_names_each_figure():
    values = [float(value) for value in range(1, 21)]  # 1..20
    assert percentile(values, 0.5) == 11.0  # round(0.5 * 19) = 10 -> the 11th value
    assert percentile(values, 0.95) == 19.0
    assert percentile(list(reversed(values)), 1.0) == 20.0
    assert summary(values) == {"p50_s": 11.0, "p90_s": 18.0, "p95_s": 19.0, "max_s": 20.0, "mean_s": 10.5, "n": 20}
    assert summary([]) == {"n": 0}


def _integrity(**changes) -> dict:
    base = {"posted": 50, "accepted_202": 50, "not_202": 0, "stored": 50, "runs": 50, "runs_per_submission_max": 1,
            "graded": 50, "not_graded": [], "done_events": 50, "signatures_valid": 50, "retried_attempts": 0}
    return {**base, **changes}


def test_integrity_fails_on_any_lost_refused_duplicated_or_ungraded_upload():
    assert integrity_ok(_integrity())
    assert integrity_ok(_integrity(retried_attempts=2))  # a retried job graded once is still once
    assert not integrity_ok(_integrity(accepted_202=49, not_202=1, stored=49, runs=49, graded=49, done_events=49,
                                       signatures_valid=49))
    assert not integrity_ok(_integrity(runs=51, runs_per_submission_max=2))
    assert not integrity_ok(_integrity(graded=49, not_graded=["error"]))
    assert not integrity_ok(_integrity(done_events=51))
    assert not integrity_ok(_integrity(signatures_valid=49))


def test_training_spec_shortens_only_the_cifar10_epochs():
    spec = parse_spec(training_spec(2), source="mixed_load training spec")
    assert spec.stages["cifar10"]["epochs"] == 2
    assert "correctness" in spec.stage_names and "cifar10" in spec.stage_names


def test_cpu_per_grade_takes_the_sandboxes_off_what_init_reaped_from_the_shims():
    from bench.cpu_accounting import per_item

    before = {"api": 1.0, "worker": 2.0, "sandboxes": 10.0, "dockerd": 5.0, "reaped_by_init": 20.0, "redis": None}
    after = {"api": 2.0, "worker": 6.0, "sandboxes": 18.0, "dockerd": 7.0, "reaped_by_init": 30.0, "redis": None}
    assert per_item(before, after, 4) == {"api": 0.25, "worker": 1.0, "sandboxes": 2.0, "dockerd": 0.5,
                                          "shims_and_runc": 0.5, "total": 3.75}
    assert per_item(before, None, 4) is None
