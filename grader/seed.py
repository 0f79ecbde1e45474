"""The demo course `make run` starts with: one instructor, one student, a quick and a full assignment."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment_spec import default_spec_toml, summarize_spec
from grader.settings import get_settings
from grader.store import credentials
from grader.store.models import Assignment, Course, Enrollment, User

DEMO_COURSE = "cnn-demo"
QUICK_ASSIGNMENT = "spatial-correctness"  # correctness only: graded in seconds
FULL_ASSIGNMENT = "spatial"  # correctness, then CIFAR-10 training in the slow queue
INSTRUCTOR_EMAIL = "instructor@example.edu"
STUDENT_EMAIL = "student@example.edu"


@dataclass(frozen=True)
class DemoSeed:
    course: str
    quick_assignment: str
    full_assignment: str
    instructor_email: str
    instructor_password: str  # fresh each start; only its hash is stored
    instructor_token: str
    student_email: str
    student_token: str  # fresh each start


def _user(db: Session, email: str, name: str, role: str) -> User:
    user = db.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=name, role=role)
        db.add(user)
        db.flush()
    return user


def _enroll(db: Session, course: Course, user: User, role: str) -> None:
    if db.scalar(select(Enrollment).where(Enrollment.course_id == course.id, Enrollment.user_id == user.id)) is None:
        db.add(Enrollment(course_id=course.id, user_id=user.id, role=role,
                          student_number="s0001" if role == "student" else ""))


def _assignment(db: Session, course: Course, slug: str, title: str, stages: list[str] | None) -> None:
    if db.scalar(select(Assignment).where(Assignment.slug == slug)) is not None:
        return
    spec_toml = default_spec_toml()
    summary = summarize_spec(spec_toml, stages)
    db.add(Assignment(course_id=course.id, slug=slug, title=title, spec_toml=spec_toml, spec=summary.parsed,
                      spec_version=summary.version, due_at=None, late_policy={"penalty_per_day": 0.1,
                                                                              "max_late_days": 3},
                      daily_submission_limit=get_settings().submissions_per_day,
                      limits={"training_cpu_minutes_per_day": summary.training_cpu_minutes_per_day
                              or get_settings().training_cpu_minutes_per_day},
                      stage_weights=summary.stage_weights, max_score=summary.max_score,
                      pass_mark=summary.pass_mark))


def seed_demo(db: Session) -> DemoSeed:
    """Create what is missing and issue fresh credentials (the old ones keep working)."""
    course = db.scalar(select(Course).where(Course.slug == DEMO_COURSE))
    if course is None:
        course = Course(slug=DEMO_COURSE, title="Deep learning from scratch (demo)")
        db.add(course)
        db.flush()
    instructor = _user(db, INSTRUCTOR_EMAIL, "Demo Instructor", "instructor")
    password = secrets.token_urlsafe(12)
    instructor.password_hash = credentials.hash_password(password)
    student = _user(db, STUDENT_EMAIL, "Demo Student", "student")
    _enroll(db, course, instructor, "instructor")
    _enroll(db, course, student, "student")
    _assignment(db, course, QUICK_ASSIGNMENT, "Module 09: spatial.py (correctness)", ["correctness"])
    _assignment(db, course, FULL_ASSIGNMENT, "Module 09: spatial.py (correctness and CIFAR-10)", None)
    return DemoSeed(course=DEMO_COURSE, quick_assignment=QUICK_ASSIGNMENT, full_assignment=FULL_ASSIGNMENT,
                    instructor_email=INSTRUCTOR_EMAIL, instructor_password=password,
                    instructor_token=credentials.issue_api_token(db, instructor, "demo"),
                    student_email=STUDENT_EMAIL, student_token=credentials.issue_api_token(db, student, "demo"))
