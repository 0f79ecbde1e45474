"""Store lookups through the access policy (policy.py): someone else's things are NotFound, exactly like things
that do not exist; a thing the caller may see but not act on is Forbidden."""

from __future__ import annotations

from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session, contains_eager, defer, joinedload

from grader.services.errors import Forbidden, NotFound
from grader.services.policy import ACTION_TEXT, STAFF_ROLES, Action, allows, may_create_course
from grader.store.models import Assignment, Course, Enrollment, GradingRun, Submission, User


_ROLES_KEY = "course_roles"  # Session.info: (user id, course id) -> role, until the session next writes
_ROLE = select(Enrollment.role).where(Enrollment.course_id == bindparam("course_id"),
                                      Enrollment.user_id == bindparam("user_id"))


def course_role(db: Session, user: User, course_id: int) -> str | None:
    """The user's role in the course (instructor, ta, student), None when not enrolled.

    A request asks this several times (the route's check, then what its presenter may show), so the answer is
    kept for the session until it writes anything (pending changes, a flush, the end of its transaction)."""
    key = (user.id, course_id)
    known = db.info.get(_ROLES_KEY, {})
    if key in known and not (db.new or db.dirty or db.deleted):
        return known[key]
    role = db.scalar(_ROLE, {"course_id": course_id, "user_id": user.id})
    _remember_role(db, user, course_id, role)
    return role


def _remember_role(db: Session, user: User, course_id: int, role: str | None) -> None:
    """Keep the role read; called after the query that read it, whose autoflush may have emptied the cache."""
    db.info.setdefault(_ROLES_KEY, {})[(user.id, course_id)] = role


@event.listens_for(Session, "after_flush")
@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget_roles(session: Session, *_args) -> None:
    session.info.pop(_ROLES_KEY, None)


def may(db: Session, user: User, course: Course, action: Action, *, owner: bool = False) -> bool:
    return allows(action, course_role(db, user, course.id), is_admin=user.is_admin, owner=owner,
                  ta_may_override=course.ta_may_override)


def _check(db: Session, user: User, course: Course, action: Action, missing: str, *, owner: bool = False,
           visible_by: Action = Action.VIEW_COURSE) -> None:
    """Pass when `user` may do `action`; else NotFound when they may not even see the thing, else Forbidden."""
    role = course_role(db, user, course.id)
    if allows(action, role, is_admin=user.is_admin, owner=owner, ta_may_override=course.ta_may_override):
        return
    if not allows(visible_by, role, is_admin=user.is_admin, owner=owner):
        raise NotFound(missing)
    raise Forbidden(f"Your role in {course.slug} ({role}) does not allow you to {ACTION_TEXT[action]}.")


def course_for(db: Session, slug: str, user: User, action: Action = Action.VIEW_COURSE) -> Course:
    course = db.scalar(select(Course).where(Course.slug == slug))
    missing = f"Course {slug!r} not found."
    if course is None:
        raise NotFound(missing)
    _check(db, user, course, action, missing)
    return course


# The assignment by slug with its course and the caller's role in that course (None when not enrolled): an upload
# asks every time, so one query built once instead of two built per call.
_ASSIGNMENT_WITH_ROLE = (select(Assignment, Enrollment.role).join(Assignment.course)
                         .outerjoin(Enrollment, (Enrollment.course_id == Assignment.course_id)
                                    & (Enrollment.user_id == bindparam("user_id")))
                         .where(Assignment.slug == bindparam("slug")).options(contains_eager(Assignment.course)))


def assignment_for(db: Session, slug: str, user: User, action: Action = Action.VIEW_COURSE) -> Assignment:
    row = db.execute(_ASSIGNMENT_WITH_ROLE, {"slug": slug, "user_id": user.id}).first()
    missing = f"Assignment {slug!r} not found."
    if row is None:
        raise NotFound(missing)
    assignment, role = row
    _remember_role(db, user, assignment.course_id, role)
    _check(db, user, assignment.course, action, missing)
    return assignment


def _submission_with_role(with_runs: bool):
    """The submission by id with its assignment and course, minus the file (read only by who asks for it), and the
    caller's role in that course (None when not enrolled); with its runs too when `with_runs`."""
    statement = (select(Submission, Enrollment.role).join(Submission.assignment)
                 .outerjoin(Enrollment, (Enrollment.course_id == Assignment.course_id)
                            & (Enrollment.user_id == bindparam("user_id")))
                 .where(Submission.id == bindparam("submission_id"))
                 .options(contains_eager(Submission.assignment).joinedload(Assignment.course),
                          defer(Submission.content)))
    return statement.options(joinedload(Submission.runs)) if with_runs else statement


# Built once: a status read asks on every request, and building the statement cost more than running it.
_SUBMISSION_STATEMENTS = {with_runs: _submission_with_role(with_runs) for with_runs in (False, True)}


def submission_for(db: Session, submission_id: int, user: User, action: Action = Action.READ_SUBMISSION, *,
                   with_runs: bool = False) -> Submission:
    """The submission, when the caller may do `action` to it (seeing it: its owner and the course's staff).

    One query: the submission, its assignment and course (the check needs both), the caller's role in the course
    (kept for the session like course_role's answers) and, `with_runs`, its runs."""
    row = db.execute(_SUBMISSION_STATEMENTS[with_runs],
                     {"submission_id": submission_id, "user_id": user.id}).unique().first()
    missing = f"Submission {submission_id} not found."
    if row is None:
        raise NotFound(missing)
    submission, role = row
    _remember_role(db, user, submission.assignment.course_id, role)
    _check(db, user, submission.assignment.course, action, missing, owner=submission.user_id == user.id,
           visible_by=Action.READ_SUBMISSION)
    return submission


def run_for(db: Session, run_id: int, user: User) -> GradingRun:
    """A run of a submission the caller may see; a regrade preview not applied yet only for staff."""
    run = db.get(GradingRun, run_id)
    missing = f"Run {run_id} not found."
    if run is None:
        raise NotFound(missing)
    course = run.submission.assignment.course
    _check(db, user, course, Action.READ_SUBMISSION, missing, owner=run.submission.user_id == user.id,
           visible_by=Action.READ_SUBMISSION)
    if not run.applied and not may(db, user, course, Action.SEE_HIDDEN):
        raise NotFound(missing)
    return run


def enrolled_user(db: Session, course: Course, user_id: int) -> User:
    """A member of the course (NotFound for anyone else)."""
    user = db.get(User, user_id)
    if user is None or course_role(db, user, course.id) is None:
        raise NotFound("No such student in this course.")
    return user


def course_ids_for(db: Session, user: User, action: Action) -> list[int] | None:
    """Ids of the courses where the caller may do `action`; None means every course (a site admin)."""
    if user.is_admin:
        return None
    rows = db.execute(select(Enrollment.role, Course.id, Course.ta_may_override).join(Course)
                      .where(Enrollment.user_id == user.id)).all()
    return [course_id for role, course_id, ta_may_override in rows
            if allows(action, role, ta_may_override=ta_may_override)]


def staffs_any_course(db: Session, user: User) -> bool:
    """Admins and the staff (instructor, TA) of at least one course."""
    return user.is_admin or db.scalar(select(Enrollment.id).where(
        Enrollment.user_id == user.id, Enrollment.role.in_(STAFF_ROLES)).limit(1)) is not None


def may_use_dashboard(db: Session, user: User) -> bool:
    """Course staff, admins, and instructor accounts that have no course yet."""
    return may_create_course(user.role) or staffs_any_course(db, user)


def require_staff_somewhere(db: Session, user: User) -> None:
    if not staffs_any_course(db, user):
        raise Forbidden("Only course staff (instructors, TAs) can do this.")
