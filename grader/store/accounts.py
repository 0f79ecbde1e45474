"""Users, courses and enrollments as a site administrator creates them (`grader admin`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from grader.store import credentials
from grader.store.models import COURSE_ROLES, USER_ROLES, ApiToken, Course, Enrollment, User, utcnow

SITE_ROLES = USER_ROLES
PASSWORD_MIN_CHARS = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class AccountError(ValueError):
    """A request the store refuses, with a message that says what to do instead."""


@dataclass(frozen=True)
class UserListing:
    email: str
    name: str
    role: str
    enrollments: tuple[str, ...]  # "course-slug:role"
    active_tokens: int
    has_password: bool


def normalize_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise AccountError(f"{email!r} is not an email address")
    return email


def user_by_email(db: Session, email: str) -> User:
    user = db.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise AccountError(f"no user with the email {email.strip().lower()!r}; create it with `grader admin create-user`")
    return user


def create_user(db: Session, email: str, name: str, role: str, password: str | None = None) -> User:
    email = normalize_email(email)
    if role not in SITE_ROLES:
        raise AccountError(f"role must be one of {', '.join(SITE_ROLES)}, not {role!r}")
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise AccountError(f"a user with the email {email!r} already exists")
    if password is not None and len(password) < PASSWORD_MIN_CHARS:
        raise AccountError(f"the password must have at least {PASSWORD_MIN_CHARS} characters")
    user = User(email=email, name=name.strip()[:200], role=role,
                password_hash=credentials.hash_password(password) if password is not None else None)
    db.add(user)
    db.flush()
    return user


def set_password(db: Session, email: str, password: str) -> User:
    """Give the user a new password; their dashboard sessions end (API tokens stay: revoke-tokens ends those)."""
    user = user_by_email(db, email)
    if len(password) < PASSWORD_MIN_CHARS:
        raise AccountError(f"the password must have at least {PASSWORD_MIN_CHARS} characters")
    user.password_hash = credentials.hash_password(password)
    user.session_version += 1
    db.flush()
    return user


def create_course(db: Session, slug: str, title: str) -> Course:
    if not _SLUG.match(slug):
        raise AccountError(f"{slug!r} is not a course slug: use lower-case letters, digits and dashes (at most 64)")
    if db.scalar(select(Course.id).where(Course.slug == slug)) is not None:
        raise AccountError(f"a course with the slug {slug!r} already exists")
    course = Course(slug=slug, title=title.strip()[:200] or slug)
    db.add(course)
    db.flush()
    return course


def enroll(db: Session, course_slug: str, email: str, role: str, student_number: str = "") -> Enrollment:
    """Enroll the user in the course with `role`, or change the role of an existing enrollment."""
    if role not in COURSE_ROLES:
        raise AccountError(f"course role must be one of {', '.join(COURSE_ROLES)}, not {role!r}")
    course = db.scalar(select(Course).where(Course.slug == course_slug))
    if course is None:
        raise AccountError(f"no course with the slug {course_slug!r}; create it with `grader admin create-course`")
    user = user_by_email(db, email)
    enrollment = db.scalar(select(Enrollment).where(Enrollment.course_id == course.id, Enrollment.user_id == user.id))
    if enrollment is None:
        enrollment = Enrollment(course_id=course.id, user_id=user.id, role=role, student_number=student_number)
        db.add(enrollment)
    else:
        enrollment.role = role
        if student_number:
            enrollment.student_number = student_number
    db.flush()
    return enrollment


def list_users(db: Session) -> list[UserListing]:
    now = utcnow()
    tokens = dict(db.execute(select(ApiToken.user_id, func.count()).where(
        ApiToken.revoked_at.is_(None), or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
        .group_by(ApiToken.user_id)).all())
    enrollments: dict[int, list[str]] = {}
    for user_id, slug, role in db.execute(select(Enrollment.user_id, Course.slug, Enrollment.role)
                                          .join(Course, Course.id == Enrollment.course_id).order_by(Course.slug)):
        enrollments.setdefault(user_id, []).append(f"{slug}:{role}")
    return [UserListing(email=user.email, name=user.name, role=user.role,
                        enrollments=tuple(enrollments.get(user.id, ())), active_tokens=tokens.get(user.id, 0),
                        has_password=bool(user.password_hash))
            for user in db.scalars(select(User).order_by(User.email))]
