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

from tests.factories import enroll, good_source, make_assignment, make_course, make_run, make_user
from tests.service_fixtures import REDIS_URL, TABLES

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


def _result(submission, score: float) -> dict:
    return {"score": score, "max_score": submission.assignment.max_score, "status": "graded", "stages": [],
            "tests": []}


def build_world(matrix: Matrix) -> None:
    from grader.store import credentials
    from grader.store.db import session_scope
    from grader.store.models import Submission

    people = {  # caller: (site role, role in course A, role in course B)
        "student": ("student", "student", None), "other_student": ("student", "student", None),
        "ta": ("student", "ta", None), "instructor": ("instructor", "instructor", None),
        "other_instructor": ("instructor", None, "instructor"), "admin": ("admin", None, None),
    }
    with session_scope() as db:
        course_a = make_course(db, slug=matrix.course, title="Course A")
        course_b = make_course(db, slug=matrix.other_course, title="Course B")
        assignments = {slug: make_assignment(db, course, slug, title=slug, late_policy={})
                       for course, slug in ((course_a, matrix.assignment), (course_b, "hw-b"))}
        users = {}
        for caller, (site_role, role_a, role_b) in people.items():
            user = make_user(db, f"{caller.replace('_', '-')}@example.edu", name=caller, role=site_role,
                             password=PASSWORD if site_role != "student" or role_a == "ta" else None)
            for course, role in ((course_a, role_a), (course_b, role_b)):
                if role:
                    enroll(db, course, user, role)
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
        matrix.run_id = make_run(db, submission, result=_result(submission, 40.0), grader_version="test").id
        for kind in ("api", "dashboard"):
            for caller in CALLERS:
                batch_id = f"{kind[:4]}-{caller}"[:32]
                make_run(db, submission, result=_result(submission, 41.0), batch_id=batch_id, grader_version="test")
                matrix.batches[(kind, caller)] = batch_id
        matrix.badge_token = credentials.badge_token_for(db, users["student"], assignments[matrix.assignment]).token
