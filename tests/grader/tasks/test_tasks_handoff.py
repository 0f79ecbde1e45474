"""The worker's record-and-advance step (grader.tasks.record_and_advance) on the real store: the flow decides
the next stage (gating), the worker adds the training ration and hands the run to the next queue."""

from __future__ import annotations

from sqlalchemy import select

from grader.result import GradingResult
from grader.store import runs as run_store
from grader.store.db import session_scope
from grader.store.models import Assignment, GradingRun, RunEvent, Submission, User, utcnow
from grader.tasks import _EventRecorder, record_and_advance
from tests.factories import make_world


def _two_stage_run(passed: bool, requires: str | None = None) -> tuple[int, GradingResult]:
    from grader.assignment_spec import default_spec_toml

    spec = default_spec_toml()
    if requires is not None:
        spec = spec.replace("[stages.cifar10]\n", f"[stages.cifar10]\nrequires = {requires}\n")
    make_world(spec_toml=spec, stages=["correctness", "cifar10"])
    with session_scope() as db:
        user = db.scalar(select(User).where(User.email == "alice@example.edu"))
        submission = Submission(assignment=db.scalar(select(Assignment)), user=user, content=b"x", size_bytes=1,
                                sha256="s")
        db.add(submission)
        db.flush()
        run_id = run_store.new_run(db, submission, kind="submit", requested_by=user.id).id
    status = "passed" if passed else "failed"
    result = GradingResult.from_json({
        "score": 10.0, "max_score": 10.0, "status": "graded",
        "stages": [{"name": "correctness", "score": 10.0, "max_score": 10.0, "status": "graded", "duration_s": 1.0}],
        "tests": [{"name": "conv2d.forward.a", "stage": "correctness", "score": 1.0, "max_score": 1.0,
                   "status": status},
                  {"name": "avgpool2d.forward.a", "stage": "correctness", "score": 0.0, "max_score": 1.0,
                   "status": "failed"}]})
    return run_id, result


def _complete_correctness(run_id: int, result: GradingResult) -> str | None:
    with session_scope() as db:
        claim = run_store.claim_run(db, run_id, "w")
    return record_and_advance(claim, result, 1.0, "", "", _EventRecorder(claim))


def _run_row(run_id: int) -> GradingRun:
    with session_scope() as db:
        return db.get(GradingRun, run_id)


def test_correct_layers_move_on_to_the_training_queue(clean_db):
    run_id, result = _two_stage_run(passed=True)  # avgpool2d is not needed for training
    assert _complete_correctness(run_id, result) == "training"
    run = _run_row(run_id)
    assert (run.status, run.stage, run.queue, run.score) == ("queued", "cifar10", "training", 10.0)
    assert GradingResult.from_json(run.result) == result  # the partial result round-trips through the row


def test_broken_layers_skip_training(clean_db):
    run_id, result = _two_stage_run(passed=False)
    assert _complete_correctness(run_id, result) is None
    run = _run_row(run_id)
    cifar10 = run.result["stages"][-1]
    assert run.status == "graded" and cifar10["status"] == "skipped" and "conv2d" in cifar10["message"]
    assert run.max_score == 50.0
    with session_scope() as db:  # the skipped stage's events, stored with the result, before the run's done
        events = db.scalars(select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.id)).all()
        assert [(event.type, event.data.get("stage")) for event in events] == [
            ("status", "correctness"), ("status", "correctness"), ("stage_started", "cifar10"),
            ("stage_finished", "cifar10"), ("done", None)]


def test_requires_nothing_trains_whatever_correctness_found(clean_db):
    run_id, result = _two_stage_run(passed=False, requires="[]")
    assert _complete_correctness(run_id, result) == "training"


def test_training_is_rationed_per_student_per_day(clean_db):
    from grader.settings import get_settings

    run_id, result = _two_stage_run(passed=True)
    with session_scope() as db:  # earlier today this student trained for the whole ration (30 CPU-minutes)
        earlier = db.get(GradingRun, run_id)
        clone = run_store.new_run(db, earlier.submission, kind="submit", requested_by=None)
        clone.status, clone.started_at = "graded", utcnow()
        clone.stage_seconds = {"cifar10": 30 * 60 / get_settings().training_cpus}
    assert _complete_correctness(run_id, result) is None
    cifar10 = _run_row(run_id).result["stages"][-1]
    assert cifar10["status"] == "skipped" and "CPU-minutes" in cifar10["message"] and "UTC" in cifar10["message"]
