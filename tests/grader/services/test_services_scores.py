"""THE counted score (grader/services/scores.py): signed runs only, the current run only, late factor applied,
pass judged on the counted score. Store rows are built in memory: the rule reads rows, it does not query."""

from __future__ import annotations

import pytest

from grader.services.scores import counted_score, standing
from grader.store.models import Assignment, GradingRun, Submission, utcnow
from grader.store.signing import sign_run

LATE_POLICY = {"penalty_per_day": 0.25, "max_late_days": 2}


def _assignment() -> Assignment:
    return Assignment(slug="hw", max_score=100.0, pass_mark=60.0, late_policy=LATE_POLICY)


def _submission(assignment: Assignment, *runs: tuple, late_days: int = 0, submission_id: int = 1) -> Submission:
    """A submission whose runs are (score, status, applied, signed) in order."""
    submission = Submission(id=submission_id, assignment=assignment, sha256="ab" * 32, late_days=late_days,
                            late=late_days > 0, created_at=utcnow())
    for index, (score, status, applied, signed) in enumerate(runs):
        run = GradingRun(id=submission_id * 100 + index, submission=submission, status=status, applied=applied,
                         score=score, max_score=100.0, spec_version="v", grader_version="g", image_digest="i")
        run.signature = sign_run(run) if signed else ""
    return submission


def test_on_time_signed_run_counts_in_full():
    counted = counted_score(_submission(_assignment(), (70.0, "graded", True, True)))
    assert (counted.score, counted.earned, counted.late_factor, counted.passed) == (70.0, 70.0, 1.0, True)


@pytest.mark.parametrize("late_days, score, passed", [(1, 60.0, True), (2, 40.0, False), (3, 0.0, False)])
def test_late_factor_is_applied_and_pass_is_judged_after_it(late_days, score, passed):
    counted = counted_score(_submission(_assignment(), (80.0, "graded", True, True), late_days=late_days))
    assert counted.score == pytest.approx(score) and counted.earned == 80.0 and counted.passed is passed


def test_unsigned_or_tampered_current_run_does_not_count_nor_fall_back():
    assignment = _assignment()
    assert counted_score(_submission(assignment, (90.0, "graded", True, False))) is None
    tampered = _submission(assignment, (50.0, "graded", True, True), (55.0, "graded", True, True))
    tampered.runs[-1].score = 100.0  # changed after signing
    assert counted_score(tampered) is None


def test_the_current_run_counts_not_the_best_run():
    """A regrade that lowered the score replaces the higher one; an unapplied preview does not count yet."""
    assignment = _assignment()
    lowered = _submission(assignment, (90.0, "graded", True, True), (65.0, "graded", True, True))
    assert counted_score(lowered).score == 65.0
    previewed = _submission(assignment, (65.0, "graded", True, True), (95.0, "graded", False, True))
    assert counted_score(previewed).score == 65.0


def test_unfinished_submission_has_no_counted_score_and_timeouts_do_not_pass():
    assignment = _assignment()
    assert counted_score(_submission(assignment, (None, "queued", True, False))) is None
    timeout = counted_score(_submission(assignment, (70.0, "timeout", True, True)))
    assert timeout.score == 70.0 and timeout.passed is False


def test_standing_best_and_latest():
    assignment = _assignment()
    first = _submission(assignment, (80.0, "graded", True, True), submission_id=1)
    late_better = _submission(assignment, (95.0, "graded", True, True), late_days=1, submission_id=2)  # 71.25
    unsigned = _submission(assignment, (100.0, "graded", True, False), submission_id=3)
    assert standing([first, late_better, unsigned], "best").submission is first
    assert standing([first, late_better, unsigned], "latest").submission is late_better
    assert standing([unsigned], "best") is None
