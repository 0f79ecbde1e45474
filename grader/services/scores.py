"""THE counted score: what a submission is worth, and whether it passes. The grades export, badges, the API's
submission views and the dashboard all ask here; nothing else computes a score that counts.

The rule:
1. A submission's score comes from its current run: the latest applied, finished run (a regrade preview counts
   only once applied; an override or a later regrade replaces what came before).
2. Only a run whose server signature verifies counts; a run that does not verify makes the submission count as
   ungraded (it does not fall back to an older run).
3. The assignment's late policy applies, judged by the upload time: the counted score is the run's score times
   the late factor (1 on time, then less per started late day, 0 past the last late day).
4. The submission passes when that run graded (not error or timeout) and the counted score reaches the pass mark.

A student's standing in an assignment is their best counted submission (ties: the later one) or, by the
`latest` policy, their latest submission that has a counted score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from grader.store import lateness
from grader.store import runs as run_store
from grader.store.models import GradingRun, Submission
from grader.store.signing import verify_run

PASS_TOLERANCE = 1e-9  # scores are sums of float points; 60.000000001 short of 60 must not fail
Policy = Literal["best", "latest"]


@dataclass(frozen=True)
class CountedScore:
    """A submission's counted score and the run it comes from."""

    submission: Submission
    run: GradingRun
    earned: float  # what the run scored
    late_factor: float  # fraction kept under the late policy
    score: float  # earned x late_factor: the score that counts
    max_score: float
    passed: bool


def counted_run(submission: Submission) -> GradingRun | None:
    """The run whose score counts (rules 1 and 2), if there is one."""
    run = run_store.current_run(submission)
    if run is None or not run.finished or run.score is None or not verify_run(run):
        return None
    return run


def counted_score(submission: Submission) -> CountedScore | None:
    """The submission's counted score (rules 1-4), None while it has none."""
    run = counted_run(submission)
    if run is None:
        return None
    assignment = submission.assignment
    factor = lateness.late_factor(assignment, submission.late_days)
    score = float(run.score) * factor
    return CountedScore(submission=submission, run=run, earned=float(run.score), late_factor=factor, score=score,
                        max_score=float(run.max_score if run.max_score is not None else assignment.max_score),
                        passed=run.status == "graded" and score >= assignment.pass_mark - PASS_TOLERANCE)


def standing(submissions: Iterable[Submission], policy: Policy = "best") -> CountedScore | None:
    """A student's standing from their submissions (oldest first): best or latest counted score."""
    counted = [score for score in map(counted_score, submissions) if score is not None]
    if not counted:
        return None
    if policy == "latest":
        return max(counted, key=lambda item: item.submission.id)
    return max(counted, key=lambda item: (item.score, item.submission.id))
