"""Courses, their roster (CSV import issues student tokens) and the assignments in them."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, HTTPException, UploadFile, status
from sqlalchemy import select

from api.access import course_for
from api.deps import CurrentInstructor, CurrentUser, SessionDep
from api.presenters import assignment_public
from api.schemas import (AssignmentCreate, AssignmentPublic, CourseCreate, CoursePublic, EnrollmentPublic,
                         RosterEntry, RosterImportResult)
from grader.settings import get_settings
from grader.store import credentials
from grader.store.assignments import SpecError, default_spec_toml, summarize_spec
from grader.store.models import Assignment, Course, Enrollment, User

router = APIRouter(prefix="/api/v1/courses", tags=["courses"])

ROSTER_MAX_BYTES = 2 * 1024 * 1024  # 2 MiB of CSV is tens of thousands of students


@router.post("", status_code=status.HTTP_201_CREATED)
def create_course(body: CourseCreate, db: SessionDep, instructor: CurrentInstructor) -> CoursePublic:
    if db.scalar(select(Course.id).where(Course.slug == body.slug)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"A course {body.slug!r} already exists.")
    course = Course(slug=body.slug, title=body.title)
    db.add(course)
    db.flush()
    db.add(Enrollment(course_id=course.id, user_id=instructor.id, role="instructor"))
    return CoursePublic.model_validate(course)


@router.get("")
def list_courses(db: SessionDep, user: CurrentUser) -> list[CoursePublic]:
    query = select(Course).order_by(Course.id)
    if not user.is_instructor:
        query = query.join(Enrollment).where(Enrollment.user_id == user.id)
    return [CoursePublic.model_validate(course) for course in db.scalars(query)]


@router.get("/{slug}")
def read_course(slug: str, db: SessionDep, user: CurrentUser) -> CoursePublic:
    return CoursePublic.model_validate(course_for(db, slug, user))


def _roster_rows(raw: bytes) -> list[dict[str, str]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise HTTPException(422, "The roster must be a UTF-8 CSV file.") from error
    reader = csv.DictReader(io.StringIO(text))
    fields = [name.strip().lower() for name in reader.fieldnames or []]
    if "email" not in fields:
        raise HTTPException(422, "The roster CSV needs a header row with an `email` column "
                                 "(optional: `name`, `student_number`).")
    rows = []
    for line_number, row in enumerate(reader, start=2):
        clean = {str(k).strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        email = clean.get("email", "").lower()
        if not email:
            continue
        if "@" not in email or len(email) > 254:
            raise HTTPException(422, f"Line {line_number} of the roster: {email!r} is not an email address.")
        rows.append({"email": email, "name": clean.get("name", "")[:200],
                     "student_number": clean.get("student_number", clean.get("id", ""))[:64]})
    return rows


@router.post("/{slug}/roster")
async def import_roster(slug: str, file: UploadFile, db: SessionDep, instructor: CurrentInstructor) -> RosterImportResult:
    """Enroll students from a CSV (`email,name,student_number`); new students get an API token, shown once."""
    course = course_for(db, slug, instructor)
    raw = await file.read(ROSTER_MAX_BYTES + 1)
    if len(raw) > ROSTER_MAX_BYTES:
        raise HTTPException(status.HTTP_413_REQUEST_ENTITY_TOO_LARGE, "The roster is larger than 2 MiB.")
    created = existing = 0
    entries = []
    for row in _roster_rows(raw):
        user = db.scalar(select(User).where(User.email == row["email"]))
        token = None
        if user is None:
            user = User(email=row["email"], name=row["name"], role="student")
            db.add(user)
            db.flush()
            token = credentials.issue_api_token(db, user, f"roster {course.slug}")
            created += 1
        else:
            existing += 1
        enrollment = db.scalar(select(Enrollment).where(Enrollment.course_id == course.id,
                                                        Enrollment.user_id == user.id))
        if enrollment is None:
            db.add(Enrollment(course_id=course.id, user_id=user.id, role=user.role,
                              student_number=row["student_number"]))
        elif row["student_number"]:
            enrollment.student_number = row["student_number"]
        entries.append(RosterEntry(email=user.email, name=user.name, student_number=row["student_number"],
                                   user_id=user.id, token=token))
    db.flush()
    return RosterImportResult(created=created, existing=existing, students=entries)


@router.get("/{slug}/roster")
def read_roster(slug: str, db: SessionDep, instructor: CurrentInstructor) -> list[EnrollmentPublic]:
    course = course_for(db, slug, instructor)
    enrollments = db.scalars(select(Enrollment).where(Enrollment.course_id == course.id).order_by(Enrollment.id))
    return [EnrollmentPublic(user_id=e.user_id, email=e.user.email, name=e.user.name, role=e.role,
                             student_number=e.student_number) for e in enrollments]


def pass_mark_points(mark: float, max_score: float) -> float:
    """A pass mark in points; one given as a fraction (at most 1) of a larger full mark is scaled."""
    points = mark * max_score if 0 < mark <= 1 < max_score else mark
    return min(points, max_score)


@router.post("/{slug}/assignments", status_code=status.HTTP_201_CREATED)
def create_assignment(slug: str, body: AssignmentCreate, db: SessionDep,
                      instructor: CurrentInstructor) -> AssignmentPublic:
    """Create an assignment from a spec (the default spec when none is given)."""
    course = course_for(db, slug, instructor)
    if db.scalar(select(Assignment.id).where(Assignment.slug == body.slug)) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"An assignment {body.slug!r} already exists.")
    spec_toml = body.spec_toml if body.spec_toml is not None else default_spec_toml()
    try:
        summary = summarize_spec(spec_toml, body.stages)
    except SpecError as error:
        raise HTTPException(422, str(error)) from error
    ration = body.training_cpu_minutes_per_day
    if ration is None:
        ration = summary.training_cpu_minutes_per_day or get_settings().training_cpu_minutes_per_day
    assignment = Assignment(
        course_id=course.id, slug=body.slug, title=body.title, spec_toml=spec_toml, spec=summary.parsed,
        spec_version=summary.version, due_at=body.due_at, late_policy=body.late_policy.model_dump(),
        daily_submission_limit=body.daily_submission_limit or get_settings().submissions_per_day,
        limits={"training_cpu_minutes_per_day": ration}, stage_weights=summary.stage_weights,
        max_score=summary.max_score,
        pass_mark=summary.pass_mark if body.pass_mark is None else pass_mark_points(body.pass_mark, summary.max_score))
    db.add(assignment)
    db.flush()
    db.refresh(assignment)
    return assignment_public(assignment)


@router.get("/{slug}/assignments")
def list_assignments(slug: str, db: SessionDep, user: CurrentUser) -> list[AssignmentPublic]:
    course = course_for(db, slug, user)
    return [assignment_public(a) for a in course.assignments]
