"""Lookups that enforce who may see what. Someone else's things are a 404, exactly like things that do not exist."""

from __future__ import annotations

from fastapi import HTTPException, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.store.models import Assignment, Course, Enrollment, GradingRun, Submission, User


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found.")


def is_enrolled(db: Session, user: User, course_id: int) -> bool:
    return db.scalar(select(Enrollment.id).where(Enrollment.course_id == course_id,
                                                 Enrollment.user_id == user.id)) is not None


def course_for(db: Session, slug: str, user: User) -> Course:
    course = db.scalar(select(Course).where(Course.slug == slug))
    if course is None or not (user.is_instructor or is_enrolled(db, user, course.id)):
        raise not_found(f"Course {slug!r}")
    return course


def assignment_for(db: Session, slug: str, user: User) -> Assignment:
    assignment = db.scalar(select(Assignment).where(Assignment.slug == slug))
    if assignment is None or not (user.is_instructor or is_enrolled(db, user, assignment.course_id)):
        raise not_found(f"Assignment {slug!r}")
    return assignment


def submission_for(db: Session, submission_id: int, user: User) -> Submission:
    submission = db.get(Submission, submission_id)
    if submission is None or not (user.is_instructor or submission.user_id == user.id):
        raise not_found(f"Submission {submission_id}")
    return submission


def run_for(db: Session, run_id: int, user: User) -> GradingRun:
    run = db.get(GradingRun, run_id)
    if run is None or not (user.is_instructor or run.submission.user_id == user.id):
        raise not_found(f"Run {run_id}")
    return run
