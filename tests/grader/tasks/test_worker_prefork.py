"""The worker's main process prepares what every pool process needs before the pool forks (issue 14), without
opening a connection that the forked processes would share."""

from __future__ import annotations

from grader import worker
from grader.spec import load_spec
from grader.stages import correctness
from grader.store import db


def test_preparing_before_the_fork_caches_the_default_runs_and_opens_no_connection():
    db.reset_engine()
    correctness.prepared_runs.cache_clear()
    correctness.prepared_job_inputs.cache_clear()
    worker.prepare_before_fork()
    spec = load_spec()
    hits = correctness.prepared_job_inputs.cache_info().hits
    correctness.prepared_job_inputs(spec.correctness.seed, spec.correctness.case_seconds, spec.catalogue_options)
    assert correctness.prepared_job_inputs.cache_info().hits == hits + 1  # a pool process's first job finds them
    assert db.get_engine.cache_info().currsize == 0  # no engine, so no pooled connection crosses the fork
