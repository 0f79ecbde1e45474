"""Infrastructure faults are never grades; a lost broker is noticed at once; claims hold on SQLite; rations reserve
training time; results are reused only from the same student's own runs (issue 11)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from grader.result import GradingResult
from grader.services.scores import counted_score
from grader.settings import get_settings
from grader.store import faults, rations
from grader.store import runs as run_store
from grader.store import sweep as sweep_store
from grader.store.db import session_scope
from grader.store.models import Assignment, GradingRun, Submission, User, utcnow
from tests.factories import good_source, make_world

RESULT = GradingResult.from_json({"score": 10.0, "max_score": 10.0, "status": "graded", "tests": [
    {"name": "conv2d.forward.a", "stage": "correctness", "score": 10.0, "max_score": 10.0, "status": "passed"}],
    "stages": [{"name": "correctness", "score": 10.0, "max_score": 10.0, "status": "graded", "duration_s": 1.0}]})


def _submission(db, email: str = "alice@example.edu", content: bytes | None = None) -> Submission:
    user = db.scalar(select(User).where(User.email == email))
    content = content if content is not None else good_source()
    import hashlib

    submission = Submission(assignment=db.scalar(select(Assignment)), user=user, content=content,
                            size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
    db.add(submission)
    db.flush()
    return submission


@pytest.fixture
def queued_run(clean_db) -> int:
    make_world()
    with session_scope() as db:
        submission = _submission(db)
        return run_store.new_run(db, submission, kind="submit", requested_by=submission.user_id).id


def _claim(run_id: int, worker: str = "w") -> run_store.Claim | None:
    with session_scope() as db:
        return run_store.claim_run(db, run_id, worker)


def test_is_infrastructure_fault():
    from sqlalchemy.exc import OperationalError

    from sandbox.runner import InfrastructureError

    for error in (InfrastructureError("engine"), ConnectionRefusedError(), TimeoutError(), OSError(5, "io"),
                  OperationalError("select 1", {}, Exception("server closed the connection"))):
        assert faults.is_infrastructure_fault(error), error
    for error in (ValueError("bad spec"), KeyError("x"), ZeroDivisionError()):
        assert not faults.is_infrastructure_fault(error), error


def test_an_engine_outage_delays_the_run_with_no_score_and_never_ends_it_as_zero(queued_run):
    """The old behaviour: three quick retries (about 30 s), then a signed 0 that counted in the export."""
    for fault in range(1, 6):
        claim = _claim(queued_run)
        assert claim is not None, f"claim after fault {fault - 1}"
        with session_scope() as db:
            assert run_store.release(db, claim, "InfrastructureError: engine unreachable")
            run = db.get(GradingRun, queued_run)
            assert (run.status, run.display_status, run.score) == ("queued", "delayed", None)
            assert run.message == faults.DELAYED_MESSAGE and run.infra_faults == fault
            wait = (run.deadline - utcnow()).total_seconds()
            assert faults.backoff_seconds(fault) - 5 < wait <= faults.backoff_seconds(fault)
        with session_scope() as db:  # not published while it waits (not even as a message the broker lost)
            assert sweep_store.sweep(db, now=utcnow(), broker_depths={"correctness": 0, "training": 0}) == []
        with session_scope() as db:  # the back-off is over: the sweep publishes it
            assert sweep_store.sweep(db, now=utcnow() + timedelta(hours=1)) == [(queued_run, "correctness")]
    claim = _claim(queued_run)  # the engine is back
    with session_scope() as db:
        run_store.record_stage(db, claim, RESULT, None, duration_s=1.0)
    with session_scope() as db:
        run = db.get(GradingRun, queued_run)
        assert (run.status, run.display_status, run.score, run.delayed_since) == ("graded", "graded", 10.0, None)
        assert counted_score(run.submission).score == 10.0


def test_past_the_retry_period_a_run_ends_unscored_and_counts_nowhere(queued_run):
    with session_scope() as db:
        submission = db.get(GradingRun, queued_run).submission
        earlier = run_store.new_run(db, submission, kind="submit", requested_by=submission.user_id).id
    claim = _claim(earlier)
    with session_scope() as db:
        run_store.record_stage(db, claim, RESULT, None, duration_s=1.0)  # an earlier run graded 10/10
    claim = _claim(queued_run)
    with session_scope() as db:
        run = db.get(GradingRun, queued_run)
        run.delayed_since = utcnow() - timedelta(seconds=get_settings().infrastructure_retry_seconds + 60)
    with session_scope() as db:
        assert not run_store.release(db, claim, "InfrastructureError: engine unreachable")
    with session_scope() as db:
        run = db.get(GradingRun, queued_run)
        assert (run.status, run.score) == ("error", None) and "does not count" in run.message
        assert run.max_score == run.submission.assignment.max_score
        counted = counted_score(run.submission)
        assert counted is not None and counted.run.id == earlier and counted.score == 10.0


def test_a_worker_dying_again_and_again_ends_the_run_unscored(queued_run):
    for _ in range(get_settings().run_max_attempts):
        assert _claim(queued_run) is not None
        with session_scope() as db:  # the worker died: its lease ran out and the sweep re-queued the run
            sweep_store.sweep(db, now=utcnow() + timedelta(hours=1))
    assert _claim(queued_run) is None
    with session_scope() as db:
        run = db.get(GradingRun, queued_run)
        assert (run.status, run.score) == ("error", None) and counted_score(run.submission) is None


def test_runs_a_lost_broker_dropped_are_found_at_once_and_a_long_queue_is_left_alone(clean_db):
    make_world()
    with session_scope() as db:
        runs = [run_store.new_run(db, _submission(db, content=good_source(str(i))), kind="submit",
                                  requested_by=None) for i in range(5)]
        for run in runs:
            run.deadline = utcnow() + timedelta(hours=1)  # far from their own republish deadline
        ids = [run.id for run in runs]
    later = utcnow() + timedelta(seconds=get_settings().broker_grace_seconds + 1)
    with session_scope() as db:
        assert sweep_store.sweep(db, now=later, broker_depths={"correctness": 5, "training": 0}) == []
        assert sweep_store.sweep(db, now=later, broker_depths={"correctness": 7, "training": 0}) == []
    with session_scope() as db:  # Redis restarted without persistence: every message is gone
        assert sorted(sweep_store.sweep(db, now=later, broker_depths={"correctness": 0, "training": 0})) == [
            (run_id, "correctness") for run_id in ids]
    with session_scope() as db:  # two of five lost: the two oldest are published again
        assert [run_id for run_id, _ in sweep_store.sweep(
            db, now=later, broker_depths={"correctness": 3, "training": 0})] == ids[:2]


def test_two_deliveries_cannot_both_claim_a_run_on_sqlite(tmp_path, monkeypatch):
    """SQLite ignores SELECT ... FOR UPDATE: the claim must be a conditional UPDATE whose row count decides."""
    from grader.store import db as store_db
    from grader.store.migrate import upgrade_head

    url = f"sqlite:///{tmp_path / 'grader.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    store_db.reset_engine()
    try:
        upgrade_head(url)
        make_world()
        with session_scope() as db:
            run_id = run_store.new_run(db, _submission(db), kind="submit", requested_by=None).id
        first_claimed, release_first = threading.Event(), threading.Event()
        claims: dict[str, object] = {}

        def first() -> None:
            with session_scope() as db:
                claims["first"] = run_store.claim_run(db, run_id, "first")
                first_claimed.set()
                release_first.wait(10)  # holds its transaction open while the second delivery arrives

        def second() -> None:
            first_claimed.wait(10)
            with session_scope() as db:
                claims["second"] = run_store.claim_run(db, run_id, "second")

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        first_claimed.wait(10)
        threading.Timer(1.0, release_first.set).start()
        for thread in threads:
            thread.join(30)
        assert claims["first"] is not None and claims["second"] is None, claims
        with session_scope() as db:
            run = db.get(GradingRun, run_id)
            assert (run.status, run.attempts, run.worker) == ("running", 1, "first")
    finally:
        store_db.reset_engine()
        monkeypatch.delenv("DATABASE_URL")
        get_settings.cache_clear()


def test_training_time_is_reserved_while_queued_and_staff_runs_are_exempt(clean_db):
    world = make_world()
    budget_minutes = get_settings().training_budget_seconds * get_settings().training_cpus / 60
    with session_scope() as db:
        waiting = [run_store.new_run(db, _submission(db, content=good_source(str(i))), kind="submit",
                                     requested_by=world.alice_id) for i in range(2)]
        for run in waiting:
            run.queue, run.stage = "training", "cifar10"  # both passed correctness, waiting for training
        staff = run_store.new_run(db, _submission(db, content=good_source("s")), kind="regrade", requested_by=1)
        staff.queue, staff.stage = "training", "cifar10"
        alice = db.get(User, world.alice_id)
        assert rations.training_minutes_today(db, alice, utcnow()) == pytest.approx(2 * budget_minutes)
        third = run_store.new_run(db, _submission(db, content=good_source("3")), kind="submit",
                                  requested_by=world.alice_id)
        ration = rations.training_ration_minutes(third.submission.assignment)
        assert (rations.training_ration_blocker(db, third, utcnow()) != "") == (2 * budget_minutes >= ration)
        assert rations.training_ration_blocker(db, staff, utcnow()) == ""  # an instructor's run is exempt


def test_a_result_is_reused_only_from_the_same_students_own_runs(clean_db):
    world = make_world()
    with session_scope() as db:
        first = _submission(db)
        run = run_store.new_run(db, first, kind="submit", requested_by=world.alice_id)
        run_id = run.id
    claim = _claim(run_id)
    with session_scope() as db:
        run_store.record_stage(db, claim, RESULT, None, duration_s=1.0)
    with session_scope() as db:
        assert run_store.reusable_run(db, _submission(db)) is not None  # alice again, same bytes
        assert run_store.reusable_run(db, _submission(db, "bob@example.edu")) is None  # bob: never alice's run
        db.get(GradingRun, run_id).kind = "override"
    with session_scope() as db:
        assert run_store.reusable_run(db, _submission(db)) is None  # never an instructor's override
