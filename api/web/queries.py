"""What the dashboard pages show, read from the store: course overview, per-student rows, chart data."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer, selectinload

from grader.store.models import (Assignment, BadgeToken, Course, Enrollment, GradingRun, Submission, TestResultRow,
                                 User)
from grader.services.runs import current_run
from grader.services.scores import CountedScore, counted_score
from grader.store.signing import verify_run

CIFAR10_STAGE = "cifar10"
DEFAULT_REQUIRED_ACCURACY = 0.75  # the module's bar when the spec does not say


def cifar10_stage(result: dict[str, Any] | None) -> dict[str, Any] | None:
    for stage in (result or {}).get("stages", []):
        if stage.get("name") == CIFAR10_STAGE:
            return stage
    return None


def cifar10_accuracy(result: dict[str, Any] | None) -> float | None:
    """Final CIFAR-10 test accuracy (fraction) of a result, when the training stage ran."""
    stage = cifar10_stage(result)
    if not stage or stage.get("status") == "skipped":
        return None
    details = _training_record(stage)
    for key in ("test_accuracy", "final_test_accuracy", "accuracy"):
        value = details.get(key)
        if isinstance(value, (int, float)):
            return float(value) / 100 if value > 1 else float(value)
    curve = training_epochs(result)
    values = [point.get("test_accuracy") for point in curve if isinstance(point.get("test_accuracy"), (int, float))]
    return float(values[-1]) if values else None


def training_epochs(result: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per-epoch points (epoch, train_loss, train_accuracy, test_accuracy) of the CIFAR-10 run."""
    stage = cifar10_stage(result)
    if not stage:
        return []
    details = _training_record(stage)
    for key in ("curve", "history", "training_curve", "epochs"):
        value = details.get(key)
        if isinstance(value, list):
            return [point for point in value if isinstance(point, dict)]
        if isinstance(value, dict):  # column form: {"epoch": [...], "train_loss": [...], ...}
            columns = {name: list(values) for name, values in value.items() if isinstance(values, list)}
            length = max((len(values) for values in columns.values()), default=0)
            return [{name: values[i] for name, values in columns.items() if i < len(values)} for i in range(length)]
    return []


def _training_record(stage: dict[str, Any]) -> dict[str, Any]:
    """The training record of the stage's details (grader/training/judging.py keeps it under `details["cifar10"]`)."""
    details = stage.get("details") or {}
    nested = details.get(CIFAR10_STAGE)
    return nested if isinstance(nested, dict) else details


def required_accuracy(assignment: Assignment) -> float:
    stage_spec = (assignment.spec or {}).get("stages", {}).get(CIFAR10_STAGE, {})
    for key in ("full_accuracy", "required_accuracy", "min_accuracy", "target_accuracy"):
        value = stage_spec.get(key)
        if isinstance(value, (int, float)):
            return float(value) / 100 if value > 1 else float(value)
    return DEFAULT_REQUIRED_ACCURACY


@dataclass
class QueueState:
    queued: dict[str, int]
    running: list[GradingRun]

    @property
    def depth(self) -> int:
        return sum(self.queued.values())


def queue_state(db: Session, course_ids: list[int] | None = None) -> QueueState:
    """Queued counts and running runs of the given courses (None: every course)."""
    queued_query = select(GradingRun.queue, func.count(GradingRun.id)).where(GradingRun.status == "queued")
    running_query = (select(GradingRun).where(GradingRun.status == "running").order_by(GradingRun.started_at)
                     .options(selectinload(GradingRun.submission).selectinload(Submission.user),
                              selectinload(GradingRun.submission).selectinload(Submission.assignment)))
    if course_ids is not None:
        queued_query = queued_query.join(Submission).join(Assignment).where(Assignment.course_id.in_(course_ids))
        running_query = running_query.join(Submission).join(Assignment).where(Assignment.course_id.in_(course_ids))
    queued = {queue: count for queue, count in db.execute(queued_query.group_by(GradingRun.queue)).all()}
    return QueueState(queued=queued, running=list(db.scalars(running_query).all()))


def submission_counts(db: Session, course: Course) -> dict[int, int]:
    rows = db.execute(select(Submission.assignment_id, func.count(Submission.id)).join(Assignment)
                      .where(Assignment.course_id == course.id).group_by(Submission.assignment_id)).all()
    return {assignment_id: count for assignment_id, count in rows}


def student_count(db: Session, course: Course) -> int:
    return db.scalar(select(func.count(Enrollment.id)).where(Enrollment.course_id == course.id,
                                                             Enrollment.role == "student")) or 0


@dataclass
class StudentRow:
    """One enrolled student's standing in an assignment; scores are counted scores (grader/services/scores.py)."""

    user: User
    student_number: str
    submissions: int = 0
    latest: Submission | None = None
    latest_run: GradingRun | None = None
    latest_counted: CountedScore | None = None
    best: CountedScore | None = None
    late: bool = False
    accuracy: float | None = None
    badge_token: str | None = None

    @property
    def latest_score(self) -> float | None:
        return self.latest_counted.score if self.latest_counted is not None else None

    @property
    def best_score(self) -> float | None:
        return self.best.score if self.best is not None else None

    @property
    def best_submission(self) -> Submission | None:
        return self.best.submission if self.best is not None else None

    @property
    def status(self) -> str:
        if self.latest_run is None:
            return "none" if self.latest is None else "queued"
        return self.latest_run.display_status


def _submissions(db: Session, assignment: Assignment, *, with_results: bool) -> list[Submission]:
    """The assignment's submissions, oldest first, with their runs; never the file bytes (up to 256 KiB each),
    and the result JSON only when asked for (it holds every check's feedback)."""
    runs = selectinload(Submission.runs)
    if not with_results:
        runs = runs.defer(GradingRun.result)
    return list(db.scalars(select(Submission).where(Submission.assignment_id == assignment.id)
                           .order_by(Submission.created_at, Submission.id)
                           .options(defer(Submission.content), runs)).all())


def student_rows(db: Session, assignment: Assignment, *, with_accuracy: bool = True) -> list[StudentRow]:
    """One row per enrolled student; `with_accuracy=False` skips reading results (CIFAR-10 accuracy stays None)."""
    enrollments = db.scalars(select(Enrollment).where(Enrollment.course_id == assignment.course_id,
                                                      Enrollment.role == "student")
                             .options(selectinload(Enrollment.user))).all()
    rows = {enrollment.user_id: StudentRow(user=enrollment.user, student_number=enrollment.student_number)
            for enrollment in enrollments}
    for submission in _submissions(db, assignment, with_results=with_accuracy):
        row = rows.get(submission.user_id)
        if row is None:
            continue
        counted = counted_score(submission)
        row.submissions += 1
        row.latest, row.latest_run, row.latest_counted = submission, current_run(submission), counted
        row.late = submission.late
        if counted is None:
            continue
        if row.best is None or counted.score >= row.best.score:
            row.best = counted
        accuracy = cifar10_accuracy(counted.run.result) if with_accuracy else None
        if accuracy is not None and (row.accuracy is None or accuracy > row.accuracy):
            row.accuracy = accuracy
    tokens = db.execute(select(BadgeToken.user_id, BadgeToken.token)
                        .where(BadgeToken.assignment_id == assignment.id)).all()
    for user_id, token in tokens:
        if user_id in rows:
            rows[user_id].badge_token = token
    return sorted(rows.values(), key=lambda row: (row.user.name or row.user.email).lower())


def check_pass_rates(db: Session, assignment: Assignment) -> dict[str, tuple[int, int]]:
    """(passed, total) per check over each student's latest finished run."""
    latest_runs: dict[int, int] = {}
    for submission in _submissions(db, assignment, with_results=False):
        run = current_run(submission)
        if run is not None and run.finished:
            latest_runs[submission.user_id] = run.id
    if not latest_runs:
        return {}
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rows = db.execute(select(TestResultRow.name, TestResultRow.status)
                      .where(TestResultRow.run_id.in_(list(latest_runs.values())))).all()
    for name, status in rows:
        counts[name][1] += 1
        if status == "passed":
            counts[name][0] += 1
    return {name: (passed, total) for name, (passed, total) in counts.items()}


def chart_version(db: Session, assignment: Assignment) -> str:
    """Changes whenever a run is added or finishes, so a chart URL carrying it is never stale in a cache."""
    latest_run, finished = db.execute(
        select(func.max(GradingRun.id), func.count(GradingRun.finished_at)).join(Submission)
        .where(Submission.assignment_id == assignment.id)).one()
    return f"{latest_run or 0}-{finished}"


def submission_times(db: Session, assignment: Assignment) -> list[datetime]:
    return list(db.scalars(select(Submission.created_at).where(Submission.assignment_id == assignment.id)).all())


@dataclass
class CheckView:
    """A check of a run as the instructor sees it."""

    name: str
    stage: str
    status: str
    score: float
    max_score: float
    visibility: str
    output: str


@dataclass
class RunView:
    run: GradingRun
    signed: bool
    checks: list[CheckView] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    accuracy: float | None = None
    message: str = ""  # the result's message as the viewer may see it

    @property
    def failed_checks(self) -> int:
        return sum(1 for check in self.checks if check.status != "passed")


def check_views(result: dict[str, Any] | None) -> list[CheckView]:
    """The checks of a result, failures first (that is what one looks for)."""
    checks = [CheckView(name=str(test.get("name", "")), stage=str(test.get("stage", "")),
                        status=str(test.get("status", "")), score=float(test.get("score", 0) or 0),
                        max_score=float(test.get("max_score", 0) or 0),
                        visibility=str(test.get("visibility", "visible")), output=str(test.get("output", "")))
              for test in (result or {}).get("tests", [])]
    checks.sort(key=lambda check: check.status == "passed")
    return checks


def run_view(run: GradingRun) -> RunView:
    result = run.result or {}
    return RunView(run=run, signed=run.finished and verify_run(run), checks=check_views(result),
                   epochs=training_epochs(result), accuracy=cifar10_accuracy(result),
                   message=str(result.get("message") or ""))


def status_counts(runs: list[GradingRun]) -> Counter:
    return Counter(run.status for run in runs)
