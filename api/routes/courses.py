"""Courses, their roster (CSV import issues tokens to new members) and the assignments in them."""

from __future__ import annotations

from fastapi import APIRouter, UploadFile, status

from api.deps import CurrentUser, SessionDep
from api.presenters import assignment_public, enrollment_public
from api.schemas import (AssignmentCreate, AssignmentPublic, CourseCreate, CoursePublic, CourseUpdate,
                         EnrollmentPublic, RosterEntry, RosterImportResult)
from grader.services import access, courses, kits
from grader.services.policy import Action

router = APIRouter(prefix="/api/v1/courses", tags=["courses"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_course(body: CourseCreate, db: SessionDep, user: CurrentUser) -> CoursePublic:
    """A new course, with the caller as its instructor (instructor accounts and admins)."""
    return CoursePublic.model_validate(courses.create_course(db, user, slug=body.slug, title=body.title,
                                                             ta_may_override=body.ta_may_override))


@router.get("")
def list_courses(db: SessionDep, user: CurrentUser) -> list[CoursePublic]:
    """The courses the caller is enrolled in (every course for an admin)."""
    return [CoursePublic.model_validate(course) for course in courses.courses_of(db, user)]


@router.get("/{slug}")
def read_course(slug: str, db: SessionDep, user: CurrentUser) -> CoursePublic:
    return CoursePublic.model_validate(access.course_for(db, slug, user))


@router.patch("/{slug}")
def update_course(slug: str, body: CourseUpdate, db: SessionDep, user: CurrentUser) -> CoursePublic:
    """Change the title, or let the course's TAs override scores (the course's instructors)."""
    course = access.course_for(db, slug, user, Action.EDIT_COURSE)
    return CoursePublic.model_validate(courses.update_course(db, course, body.model_dump(exclude_unset=True)))


@router.post("/{slug}/roster")
async def import_roster(slug: str, file: UploadFile, db: SessionDep, user: CurrentUser) -> RosterImportResult:
    """Enroll people from a CSV (`email,name,student_number[,role]`, role student by default); new users get an
    API token, shown once."""
    course = access.course_for(db, slug, user, Action.EDIT_ROSTER)
    raw = await file.read(courses.ROSTER_MAX_BYTES + 1)
    entries = courses.import_roster(db, course, user, raw)
    created = sum(entry.token is not None for entry in entries)
    return RosterImportResult(created=created, existing=len(entries) - created, students=[
        RosterEntry(email=entry.user.email, name=entry.user.name, student_number=entry.student_number,
                    user_id=entry.user.id, role=entry.role, token=entry.token) for entry in entries])


@router.get("/{slug}/roster")
def read_roster(slug: str, db: SessionDep, user: CurrentUser) -> list[EnrollmentPublic]:
    course = access.course_for(db, slug, user, Action.READ_ROSTER)
    return [enrollment_public(enrollment) for enrollment in courses.roster(db, course)]


@router.post("/{slug}/assignments", status_code=status.HTTP_201_CREATED)
def create_assignment(slug: str, body: AssignmentCreate, db: SessionDep, user: CurrentUser) -> AssignmentPublic:
    """Create an assignment from a spec (the default spec when none is given)."""
    course = access.course_for(db, slug, user, Action.EDIT_ASSIGNMENTS)
    assignment = courses.create_assignment(
        db, course, slug=body.slug, title=body.title, spec_toml=body.spec_toml, due_at=body.due_at,
        late_policy=body.late_policy.model_dump(), daily_submission_limit=body.daily_submission_limit,
        training_cpu_minutes_per_day=body.training_cpu_minutes_per_day, pass_mark=body.pass_mark,
        stages=body.stages)
    if body.reference_solution is not None:
        kits.require_passing_self_test(db, assignment, body.reference_solution.encode())
    return assignment_public(assignment)


@router.get("/{slug}/assignments")
def list_assignments(slug: str, db: SessionDep, user: CurrentUser) -> list[AssignmentPublic]:
    course = access.course_for(db, slug, user)
    return [assignment_public(a) for a in course.assignments]
