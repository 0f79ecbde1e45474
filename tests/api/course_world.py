"""Two courses with one caller of every kind, for the authorization matrix and the API fuzzer.

Course A: Alice ("student", owns a graded submission), Bob ("other_student"), Tina ("ta"), the "instructor".
Course B: Olga ("other_instructor"). A site "admin" enrolled nowhere. Each has an API token; staff and the admin
a password. Alice's submission has one signed graded run and, per caller, two finished regrade batches (one for
the API, one for the dashboard) that caller may apply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.api.service_fixtures import REDIS_URL, TABLES, good_source

CALLERS = ("anonymous", "student", "other_student", "ta", "instructor", "other_instructor", "admin")
PASSWORD = "correct horse battery staple"


@dataclass
class Matrix:
    """The two courses, their people and the ids the paths need."""

    course: str = "course-a"
    other_course: str = "course-b"
    assignment: str = "hw-a"
    emails: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    user_ids: dict[str, int] = field(default_factory=dict)
    submission_id: int = 0
    run_id: int = 0
    badge_token: str = ""
    batches: dict[tuple[str, str], str] = field(default_factory=dict)  # (api|dashboard, caller) -> batch id
    clients: dict[str, TestClient] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)


def truncate() -> None:
    """Empty tables and the test Redis database (queued runs, the login throttle's counts)."""
    import redis

    from grader.store.db import get_engine

    with get_engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    redis.Redis.from_url(REDIS_URL).flushdb()


def _finished_run(db, submission, *, score: float, batch_id: str | None = None):
    """A finished, signed run (a preview of `batch_id` when given), as a worker would leave it."""
    from grader.store.models import GradingRun, utcnow
    from grader.store.signing import sign_run

    now = utcnow()
    run = GradingRun(submission=submission, status="graded", stage="correctness", queue="correctness",
                     kind="preview" if batch_id else "submit", applied=batch_id is None, batch_id=batch_id,
                     grader_version="test", spec_version=submission.assignment.spec_version, started_at=now,
                     finished_at=now, score=score, max_score=submission.assignment.max_score,
                     result={"score": score, "max_score": submission.assignment.max_score, "status": "graded",
                             "stages": [], "tests": []})
    db.add(run)
    db.flush()
    run.signature = sign_run(run)
    return run


def build_world(matrix: Matrix) -> None:
    from grader.store import credentials
    from grader.assignment_spec import default_spec_toml, summarize_spec
    from grader.store.db import session_scope
    from grader.store.models import Assignment, Course, Enrollment, Submission, User

    people = {  # caller: (site role, role in course A, role in course B)
        "student": ("student", "student", None), "other_student": ("student", "student", None),
        "ta": ("student", "ta", None), "instructor": ("instructor", "instructor", None),
        "other_instructor": ("instructor", None, "instructor"), "admin": ("admin", None, None),
    }
    password_hash = None
    with session_scope() as db:
        password_hash = credentials.hash_password(PASSWORD)
        course_a = Course(slug=matrix.course, title="Course A")
        course_b = Course(slug=matrix.other_course, title="Course B")
        db.add_all([course_a, course_b])
        db.flush()
        spec = default_spec_toml()
        summary = summarize_spec(spec, ["correctness"])
        assignments = {}
        for course, slug in ((course_a, matrix.assignment), (course_b, "hw-b")):
            assignments[slug] = Assignment(
                course_id=course.id, slug=slug, title=slug, spec_toml=spec, spec=summary.parsed,
                spec_version=summary.version, late_policy={}, daily_submission_limit=50, limits={},
                stage_weights=summary.stage_weights, max_score=summary.max_score, pass_mark=summary.pass_mark)
            db.add(assignments[slug])
        db.flush()
        users = {}
        for caller, (site_role, role_a, role_b) in people.items():
            user = User(email=f"{caller.replace('_', '-')}@example.edu", name=caller, role=site_role,
                        password_hash=password_hash if site_role != "student" or role_a == "ta" else None)
            db.add(user)
            db.flush()
            for course, role in ((course_a, role_a), (course_b, role_b)):
                if role:
                    db.add(Enrollment(course_id=course.id, user_id=user.id, role=role))
            users[caller] = user
            matrix.emails[caller] = user.email
            matrix.user_ids[caller] = user.id
            matrix.tokens[caller] = credentials.issue_api_token(db, user, "matrix")
        source = good_source("matrix")
        submission = Submission(assignment=assignments[matrix.assignment], user=users["student"], content=source,
                                size_bytes=len(source), sha256=hashlib.sha256(source).hexdigest())
        db.add(submission)
        db.flush()
        matrix.submission_id = submission.id
        matrix.run_id = _finished_run(db, submission, score=40.0).id
        for kind in ("api", "dashboard"):
            for caller in CALLERS:
                batch_id = f"{kind[:4]}-{caller}"[:32]
                _finished_run(db, submission, score=41.0, batch_id=batch_id)
                matrix.batches[(kind, caller)] = batch_id
        matrix.badge_token = credentials.badge_token_for(db, users["student"], assignments[matrix.assignment]).token
