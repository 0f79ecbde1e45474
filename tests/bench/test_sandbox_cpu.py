"""bench.sandbox_cpu --floor: empty jobs in fresh containers, one at a time or several at once (the ceiling of any
grading throughput on the machine, issue 14)."""

from __future__ import annotations

import pytest

from bench import sandbox_cpu

pytestmark = pytest.mark.docker


def test_empty_jobs_run_at_once_are_all_counted_and_give_a_rate():
    figures = sandbox_cpu._floor_jobs(runs=5, concurrency=2)
    assert figures["concurrency"] == 2
    assert figures["empty_jobs_per_minute"] > 0
    # Every job's container ran Python and NumPy: the sandboxes' CPU per job is well above nothing.
    assert figures["cpu_seconds_per_job"]["sandboxes"] > 0.01


def test_one_at_a_time_gives_no_rate():
    assert "empty_jobs_per_minute" not in sandbox_cpu._floor_jobs(runs=2)
