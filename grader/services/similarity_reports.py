"""Similarity reports (staff only): requesting one for an assignment after its due date, computing it in the
background from every student's latest submission (grader/similarity.py), and reading it back with the overlap of
one pair. Code handed out to everyone (the starter file the instructor uploads, the course kit) is ignored."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader import similarity
from grader.services.errors import Conflict, Invalid, NotFound, TooLarge
from grader.settings import get_settings
from grader.store.models import Assignment, SimilarityReport, Submission, User, as_utc, utcnow

PAIRS_KEPT = 200  # the report keeps the most similar pairs; the rest share little by construction
STARTER_MAX_BYTES = 256 * 1024  # a starter file is a Python file like a submission
log = logging.getLogger(__name__)


def request_report(db: Session, assignment: Assignment, user: User, *, starter: bytes = b"") -> SimilarityReport:
    """A queued report; publish `report.id` after commit (grader/similarity_task.py). Only after the due date."""
    if assignment.due_at is not None and utcnow() < as_utc(assignment.due_at):
        raise Conflict(f"{assignment.slug} is due {as_utc(assignment.due_at):%Y-%m-%d %H:%M} UTC; the similarity "
                       "report compares final submissions, so it runs after the due date.")
    if len(starter) > STARTER_MAX_BYTES:
        raise TooLarge(f"The starter file is larger than {STARTER_MAX_BYTES // 1024} KiB.")
    try:
        starter.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid("The starter file is not UTF-8 text; upload the .py file you handed out.") from None
    previous = latest_report(db, assignment)
    if starter == b"" and previous is not None:
        starter = previous.starter  # a rerun keeps the starter uploaded before
    report = SimilarityReport(assignment_id=assignment.id, requested_by=user.id, starter=starter)
    db.add(report)
    db.flush()
    return report


def latest_report(db: Session, assignment: Assignment) -> SimilarityReport | None:
    return db.scalar(select(SimilarityReport).where(SimilarityReport.assignment_id == assignment.id)
                     .order_by(SimilarityReport.id.desc()).limit(1))


def report_of(db: Session, assignment: Assignment, report_id: int) -> SimilarityReport:
    report = db.get(SimilarityReport, report_id)
    if report is None or report.assignment_id != assignment.id:
        raise NotFound("no such similarity report")
    return report


def latest_submissions(db: Session, assignment: Assignment) -> dict[int, Submission]:
    """Each student's latest submission, by submission id."""
    latest: dict[int, Submission] = {}
    for submission in db.scalars(select(Submission).where(Submission.assignment_id == assignment.id)
                                 .order_by(Submission.id)):
        latest[submission.user_id] = submission
    return {submission.id: submission for submission in latest.values()}


def kit_sources(assignment: Assignment) -> list[str]:
    """The course kit's Python files (the uploaded kit the spec names, else the built-in one)."""
    from grader.kits import kit_root
    from grader.spec import parse_spec
    from sandbox.runner import KIT_DIR

    spec = parse_spec(assignment.spec_toml, source="assignment spec")
    root = kit_root(spec.kit, get_settings()) if spec.kit else KIT_DIR
    return [path.read_text(errors="replace") for path in sorted(Path(root).rglob("*.py"))]


def compute(db: Session, report: SimilarityReport, *, on_progress=None) -> None:
    """Compare every pair of latest submissions and store the ranked pairs on the report."""
    assignment = report.assignment
    latest = latest_submissions(db, assignment)
    sources = {str(submission_id): submission.content.decode("utf-8", errors="replace")
               for submission_id, submission in latest.items()}
    handed_out = kit_sources(assignment) + ([report.starter.decode("utf-8")] if report.starter else [])
    pairs = similarity.compare_all(sources, handed_out=handed_out, on_progress=on_progress)
    report.pairs = [{"first": int(pair.first), "second": int(pair.second), "score": pair.score,
                     "first_share": pair.first_share, "second_share": pair.second_share,
                     "overlap_tokens": pair.overlap_tokens,
                     "first_spans": [[span.start, span.end] for span in pair.first_spans],
                     "second_spans": [[span.start, span.end] for span in pair.second_spans]}
                    for pair in pairs[:PAIRS_KEPT]]
    count = len(sources)
    report.total_pairs = report.done_pairs = count * (count - 1) // 2
    report.status, report.finished_at = "done", utcnow()
    report.message = (f"{count} students' latest submissions compared; {len(pairs)} pair(s) share code beyond "
                      f"what was handed out.")


@dataclass(frozen=True)
class PairView:
    rank: int
    first: Submission
    second: Submission
    score: float
    first_share: float
    second_share: float
    first_spans: list[list[int]]
    second_spans: list[list[int]]


def pair_views(db: Session, report: SimilarityReport) -> list[PairView]:
    views = []
    for rank, pair in enumerate(report.pairs or [], start=1):
        first, second = db.get(Submission, pair["first"]), db.get(Submission, pair["second"])
        if first is None or second is None:
            continue
        views.append(PairView(rank, first, second, pair["score"], pair["first_share"], pair["second_share"],
                              pair["first_spans"], pair["second_spans"]))
    return views
