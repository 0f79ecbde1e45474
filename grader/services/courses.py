"""Courses, their rosters and their assignments."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment_spec import SpecError, default_spec_toml, summarize_spec
from grader.services import access, extensions
from grader.services.errors import Conflict, Forbidden, Invalid, TooLarge
from grader.services.policy import Action, may_create_course
from grader.settings import get_settings
from grader.store import credentials
from grader.store.models import COURSE_ROLES, Assignment, Course, Enrollment, User

ROSTER_MAX_BYTES = 2 * 1024 * 1024  # 2 MiB of CSV is tens of thousands of students


def create_course(db: Session, user: User, *, slug: str, title: str, ta_may_override: bool = False) -> Course:
    """A new course with its creator as instructor."""
    if not may_create_course(user.role):
        raise Forbidden("Only instructors and admins can create courses.")
    if db.scalar(select(Course.id).where(Course.slug == slug)) is not None:
        raise Conflict(f"A course {slug!r} already exists.")
    course = Course(slug=slug, title=title, ta_may_override=ta_may_override)
    db.add(course)
    db.flush()
    db.add(Enrollment(course_id=course.id, user_id=user.id, role="instructor"))
    return course


def courses_of(db: Session, user: User) -> list[Course]:
    """Every course for an admin; the courses one is enrolled in for anyone else."""
    query = select(Course).order_by(Course.id)
    if not user.is_admin:
        query = query.join(Enrollment).where(Enrollment.user_id == user.id)
    return list(db.scalars(query))


def update_course(db: Session, course: Course, changes: dict[str, Any]) -> Course:
    """Change the title or whether TAs may override (only the keys given, none of them null)."""
    if any(changes.get(name, "") is None for name in ("title", "ta_may_override")):
        raise Invalid("title and ta_may_override cannot be null; leave a field out to keep its value.")
    for name in ("title", "ta_may_override"):
        if name in changes:
            setattr(course, name, changes[name])
    db.flush()
    return course


def courses_where(db: Session, user: User, action: Action) -> list[Course]:
    """The courses where the user may do `action` (every course for an admin)."""
    course_ids = access.course_ids_for(db, user, action)
    query = select(Course).order_by(Course.id)
    return list(db.scalars(query if course_ids is None else query.where(Course.id.in_(course_ids))))


@dataclass(frozen=True)
class RosterRow:
    email: str
    name: str
    student_number: str
    role: str | None  # None: keep (or, for a new member, "student")


def roster_rows(raw: bytes) -> list[RosterRow]:
    """Rows of a roster CSV (`email`, optional `name`, `student_number`, `role`); Invalid saying what is wrong."""
    if len(raw) > ROSTER_MAX_BYTES:
        raise TooLarge("The roster is larger than 2 MiB.")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Invalid("The roster must be a UTF-8 CSV file.") from error
    reader = csv.DictReader(io.StringIO(text))
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in fields:
        raise Invalid("The roster CSV needs a header row with an `email` column "
                      "(optional: `name`, `student_number`, `role`).")
    rows = []
    for line_number, row in enumerate(reader, start=2):
        clean = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        email = clean.get("email", "").lower()
        if not email:
            continue
        if "@" not in email or len(email) > 254:
            raise Invalid(f"Line {line_number} of the roster: {email!r} is not an email address.")
        role = clean.get("role", "").lower() or None
        if role is not None and role not in COURSE_ROLES:
            raise Invalid(f"Line {line_number} of the roster: role {role!r} is not one of {', '.join(COURSE_ROLES)}.")
        rows.append(RosterRow(email=email, name=clean.get("name", "")[:200],
                              student_number=clean.get("student_number", clean.get("id", ""))[:64], role=role))
    return rows


@dataclass(frozen=True)
class RosterEntry:
    user: User
    student_number: str
    role: str  # in the course
    token: str | None  # issued now to a new user (shown once)


def import_roster(db: Session, course: Course, importer: User, raw: bytes) -> list[RosterEntry]:
    """Enroll the CSV's people (as students unless a `role` column says otherwise); new users get an API token."""
    entries = []
    for row in roster_rows(raw):
        user = db.scalar(select(User).where(User.email == row.email))
        token = None
        if user is None:
            user = User(email=row.email, name=row.name, role="student")
            db.add(user)
            db.flush()
            token = credentials.issue_api_token(db, user, f"roster {course.slug}")
        enrollment = db.scalar(select(Enrollment).where(Enrollment.course_id == course.id,
                                                        Enrollment.user_id == user.id))
        if user.id == importer.id and row.role is not None and (enrollment is None or enrollment.role != row.role):
            raise Invalid(f"The roster would change your own role in {course.slug}; remove the `role` of "
                          f"{row.email} and import again.")
        if enrollment is None:
            enrollment = Enrollment(course_id=course.id, user_id=user.id, role=row.role or "student",
                                    student_number=row.student_number)
            db.add(enrollment)
        else:
            enrollment.student_number = row.student_number or enrollment.student_number
            enrollment.role = row.role or enrollment.role
        entries.append(RosterEntry(user=user, student_number=row.student_number, role=enrollment.role, token=token))
    db.flush()
    return entries


def roster(db: Session, course: Course) -> list[Enrollment]:
    return list(db.scalars(select(Enrollment).where(Enrollment.course_id == course.id).order_by(Enrollment.id)))


def pass_mark_points(mark: float, max_score: float) -> float:
    """A pass mark in points; one given as a fraction (at most 1) of a larger full mark is scaled."""
    points = mark * max_score if 0 < mark <= 1 < max_score else mark
    return min(points, max_score)


def create_assignment(db: Session, course: Course, *, slug: str, title: str, spec_toml: str | None = None,
                      due_at: datetime | None = None, late_policy: dict[str, Any] | None = None,
                      daily_submission_limit: int | None = None, training_cpu_minutes_per_day: float | None = None,
                      pass_mark: float | None = None, stages: list[str] | None = None) -> Assignment:
    """An assignment from a spec (the default spec when none is given)."""
    if db.scalar(select(Assignment.id).where(Assignment.slug == slug)) is not None:
        raise Conflict(f"An assignment {slug!r} already exists.")
    spec_toml = spec_toml if spec_toml is not None else default_spec_toml()
    try:
        summary = summarize_spec(spec_toml, stages)
    except SpecError as error:
        raise Invalid(str(error)) from error
    settings = get_settings()
    ration = training_cpu_minutes_per_day
    if ration is None:
        ration = summary.training_cpu_minutes_per_day or settings.training_cpu_minutes_per_day
    assignment = Assignment(
        course_id=course.id, slug=slug, title=title, spec_toml=spec_toml, spec=summary.parsed,
        spec_version=summary.version, due_at=due_at, late_policy=late_policy or {},
        daily_submission_limit=daily_submission_limit or settings.submissions_per_day,
        limits={"training_cpu_minutes_per_day": ration}, stage_weights=summary.stage_weights,
        max_score=summary.max_score,
        pass_mark=summary.pass_mark if pass_mark is None else pass_mark_points(pass_mark, summary.max_score))
    db.add(assignment)
    db.flush()
    db.refresh(assignment)
    return assignment


def update_assignment(db: Session, assignment: Assignment, changes: dict[str, Any],
                      actor_id: int | None = None) -> Assignment:
    """Change title, due date, late policy, daily limit or pass mark (only the keys given; a null due date
    removes it). A new due date recomputes lateness (grader/services/extensions.py); both changes are audited."""
    required = [name for name in ("title", "daily_submission_limit", "late_policy", "pass_mark")
                if name in changes and changes[name] is None]
    if required:
        raise Invalid(f"{required[0]} cannot be null; leave it out to keep the current value.")
    old = {"due_at": assignment.due_at, "late_policy": dict(assignment.late_policy or {})}
    for name in ("title", "due_at", "daily_submission_limit"):
        if name in changes:
            setattr(assignment, name, changes[name])
    if changes.get("late_policy") is not None:
        assignment.late_policy = dict(changes["late_policy"])
    if changes.get("pass_mark") is not None:
        assignment.pass_mark = pass_mark_points(changes["pass_mark"], assignment.max_score)
    db.flush()
    extensions.after_assignment_change(db, assignment, changes, old, actor_id)
    return assignment
