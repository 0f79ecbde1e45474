"""The run life cycle in the store: claims, stale workers, the sweep, bounded attempts, lateness, signatures."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from grader.result import GradingResult
from grader.store import audit, lateness
from grader.store import runs as run_store
from grader.store import sweep as sweep_store
from grader.store.db import session_scope
from grader.store.models import GradingRun, RunEvent, Submission, TestResultRow, User, utcnow
from grader.store.signing import sign_run, verify_run
from tests.factories import good_source, make_world

RESULT = GradingResult.from_json({"score": 10.0, "max_score": 10.0, "status": "graded", "tests": [
    {"name": "conv2d.forward.a", "stage": "correctness", "score": 10.0, "max_score": 10.0, "status": "passed"}],
    "stages": [{"name": "correctness", "score": 10.0, "max_score": 10.0, "status": "graded", "duration_s": 1.0}]})


@pytest.fixture
def queued_run(clean_db) -> int:
    make_world()
    with session_scope() as db:
        user = db.scalar(select(User).where(User.email == "alice@example.edu"))
        from grader.store.models import Assignment

        assignment = db.scalar(select(Assignment))
        submission = Submission(assignment=assignment, user=user, content=good_source(), size_bytes=1, sha256="s")
        db.add(submission)
        db.flush()
        return run_store.new_run(db, submission, kind="submit", requested_by=user.id).id


def test_a_run_is_claimed_once_and_finished_once(queued_run):
    with session_scope() as db:
        first = run_store.claim_run(db, queued_run, "w1")
    with session_scope() as db:
        assert run_store.claim_run(db, queued_run, "w2") is None  # a second delivery finds it running
    with session_scope() as db:
        assert run_store.record_stage(db, first, RESULT, None, duration_s=1.0) is None
    with session_scope() as db:
        assert run_store.record_stage(db, first, RESULT, None, duration_s=1.0) is None  # no second result
        assert run_store.claim_run(db, queued_run, "w3") is None
        run = db.get(GradingRun, queued_run)
        assert (run.status, run.score, run.attempts) == ("graded", 10.0, 1) and verify_run(run)
        assert db.scalar(select(func.count(TestResultRow.id))) == 1
        assert db.scalar(select(func.count(RunEvent.id)).where(RunEvent.type == "done")) == 1


def test_a_result_recorded_while_the_sweep_requeues_the_run_waits_and_writes_nothing(queued_run):
    """The sweep's requeue holds the row when the worker comes to record: the worker waits for it, then sees the run
    is no longer its own (Postgres re-checks the guard on the row it locked) instead of grading it a second time."""
    with session_scope() as db:
        stale = run_store.claim_run(db, queued_run, "slow worker")
    recorded: list[str | None] = []
    with session_scope() as sweeper:
        assert sweep_store.sweep(sweeper, now=utcnow() + timedelta(minutes=10)) == [(queued_run, "correctness")]
        sweeper.flush()  # the requeue's UPDATE holds the row lock until this block commits
        worker = threading.Thread(target=lambda: recorded.append(_record(stale)))
        worker.start()
        worker.join(1.0)
        assert worker.is_alive()  # waiting for the sweep's lock
    worker.join(10.0)
    assert recorded == [None]
    with session_scope() as db:
        run = db.get(GradingRun, queued_run)
        assert (run.status, run.score, run.signature) == ("queued", None, "")
        assert db.scalar(select(func.count(TestResultRow.id))) == 0


def _record(claim: run_store.Claim) -> str | None:
    with session_scope() as db:
        return run_store.record_stage(db, claim, RESULT, None, duration_s=1.0)


def test_the_sweep_requeues_a_dead_workers_run_and_the_stale_worker_cannot_write(queued_run):
    with session_scope() as db:
        stale = run_store.claim_run(db, queued_run, "dead worker")
    with session_scope() as db:
        assert sweep_store.sweep(db, now=utcnow()) == []  # lease still valid
    with session_scope() as db:
        assert sweep_store.sweep(db, now=utcnow() + timedelta(minutes=10)) == [(queued_run, "correctness")]
        assert db.get(GradingRun, queued_run).status == "queued"
    with session_scope() as db:
        fresh = run_store.claim_run(db, queued_run, "w2")
    with session_scope() as db:
        assert run_store.record_stage(db, stale, dataclasses.replace(RESULT, score=1.0), None, duration_s=1.0) is None
        assert not run_store.renew_lease(db, stale)
        assert db.get(GradingRun, queued_run).status == "running"
    with session_scope() as db:
        run_store.record_stage(db, fresh, RESULT, None, duration_s=1.0)
    with session_scope() as db:
        run = db.get(GradingRun, queued_run)
        assert (run.status, run.score, run.attempts) == ("graded", 10.0, 2)


def test_attempts_are_bounded(queued_run, service_env):
    """Workers that keep dying with a run end it after run_max_attempts claims, without a score (never the student's
    fault); infrastructure faults do not use attempts up (they delay the run, tests/grader/store/test_store_faults.py)."""
    for _ in range(3):
        with session_scope() as db:
            claim = run_store.claim_run(db, queued_run, "w")
            assert claim is not None
        with session_scope() as db:
            sweep_store.sweep(db, now=utcnow() + timedelta(hours=1))  # the worker died: lease expired
    with session_scope() as db:
        assert run_store.claim_run(db, queued_run, "w") is None
        run = db.get(GradingRun, queued_run)
        assert run.status == "error" and "problem on our side" in run.result["message"]
        assert run.score is None and run.max_score == run.submission.assignment.max_score


def test_late_days_and_penalty(clean_db):
    make_world(due_at=utcnow())
    with session_scope() as db:
        from grader.store.models import Assignment

        assignment = db.scalar(select(Assignment))
        due = assignment.due_at
        assert lateness.late_days(assignment, due - timedelta(seconds=1)) == 0
        assert lateness.late_days(assignment, due + timedelta(minutes=1)) == 1
        assert lateness.late_days(assignment, due + timedelta(days=1, minutes=1)) == 2
        assert lateness.late_factor(assignment, 1) == pytest.approx(0.9)
        assert lateness.late_factor(assignment, 3) == 0.0  # past max_late_days


def test_signature_covers_the_score(queued_run):
    with session_scope() as db:
        run = db.get(GradingRun, queued_run)
        run.score, run.status = 5.0, "graded"
        run.signature = sign_run(run)
        assert verify_run(run)
        run.score = 6.0
        assert not verify_run(run)


def test_audit_chain_detects_tampering(clean_db):
    from sqlalchemy import text

    with session_scope() as db:
        for index in range(3):
            audit.append(db, actor_id=1, action="override", entity="submission", entity_id=index,
                         data={"old_score": index, "new_score": index + 1})
    with session_scope() as db:
        assert audit.verify_chain(db) == (True, None)
    with session_scope() as db:
        db.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update"))
        db.execute(text("UPDATE audit_log SET data = '{\"old_score\": 1, \"new_score\": 99}' WHERE id = 2"))
        db.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update"))
    with session_scope() as db:
        assert audit.verify_chain(db) == (False, 2)
