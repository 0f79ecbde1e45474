"""What a student's CI badge shows, and the badge tokens that name it. A badge token identifies one student's
standing in one assignment and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.services.errors import NotFound
from grader.services.scores import CountedScore, counted_score
from grader.store import credentials
from grader.store import runs as run_store
from grader.store.models import Assignment, BadgeToken, Enrollment, Submission, User

BADGE_TOKEN_MAX_LENGTH = 64


@dataclass(frozen=True)
class BadgeState:
    label: str
    grading: bool  # the latest submission is still being graded
    counted: CountedScore | None  # else the latest submission that has a counted score, if any


def token_row(db: Session, token: str) -> BadgeToken:
    row = db.scalar(select(BadgeToken).where(BadgeToken.token == token)) \
        if 0 < len(token) <= BADGE_TOKEN_MAX_LENGTH else None
    if row is None:
        raise NotFound("Not found.")
    return row


def badge_state(db: Session, badge_token: BadgeToken) -> BadgeState:
    """Latest submission still grading -> grading; else the counted score of the latest submission that has one."""
    assignment = badge_token.assignment
    submissions = db.scalars(
        select(Submission).where(Submission.assignment_id == assignment.id, Submission.user_id == badge_token.user_id)
        .order_by(Submission.created_at.desc(), Submission.id.desc())).all()
    for index, submission in enumerate(submissions):
        run = run_store.current_run(submission)
        if run is None:
            continue
        if not run.finished:
            if index == 0:
                return BadgeState(assignment.slug, grading=True, counted=None)
            continue
        counted = counted_score(submission)
        if counted is not None:
            return BadgeState(assignment.slug, grading=False, counted=counted)
    return BadgeState(assignment.slug, grading=False, counted=None)


def badge_tokens_of(db: Session, user: User) -> list[BadgeToken]:
    """The user's badge token for every assignment of the courses they are enrolled in (created on first use)."""
    assignments = db.scalars(select(Assignment).join(Enrollment, Enrollment.course_id == Assignment.course_id)
                             .where(Enrollment.user_id == user.id).order_by(Assignment.id)).all()
    return [credentials.badge_token_for(db, user, assignment) for assignment in assignments]


def rotate(db: Session, student: User, assignment: Assignment) -> BadgeToken:
    """A new token for the student's badge; the old URL stops working at once."""
    return credentials.rotate_badge_token(db, student, assignment)
