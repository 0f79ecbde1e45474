"""Factories for the rows tests need: users, courses, enrollments, assignments, submissions with their runs.

Each takes an open session and flushes, so ids are set and the caller decides when to commit (`session_scope`).
Two ready-made worlds are built from them: `make_world` (the API, store and worker tests: tokens for a professor
and two students) and `seed_course` (the dashboard, badge and CLI tests: a course with two students and a badge).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from grader.assignment_spec import default_spec_toml, summarize_spec
from grader.settings import PROJECT_ROOT
from grader.store import credentials
from grader.store.models import Assignment, Course, Enrollment, GradingRun, Submission, TestResultRow, User, utcnow
from grader.store.signing import sign_run

INSTRUCTOR_EMAIL = "prof@example.edu"
INSTRUCTOR_PASSWORD = "correct horse battery staple"
GOOD_FILE = PROJECT_ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
STUB_SOURCE = b"import numpy as np\n\nclass Conv2D:\n    pass\n"


def good_source(variant: str = "") -> bytes:
    """The correct fixture file; `variant` appends a comment so the sha256 differs (no result reuse)."""
    return GOOD_FILE.read_bytes() + (f"\n# {variant}\n".encode() if variant else b"")


def make_user(db, email: str, *, name: str = "", role: str = "student", password: str | None = None) -> User:
    """A user with a site role ("student", "instructor", "admin"); a password only when given."""
    user = User(email=email, name=name, role=role,
                password_hash=credentials.hash_password(password) if password is not None else None)
    db.add(user)
    db.flush()
    return user


def enroll(db, course: Course, user: User, role: str, number: str = "") -> Enrollment:
    """`user` in `course` as "student", "ta" or "instructor"."""
    enrollment = Enrollment(course_id=course.id, user_id=user.id, role=role, student_number=number)
    db.add(enrollment)
    return enrollment


def make_instructor(db, email: str = INSTRUCTOR_EMAIL, password: str = INSTRUCTOR_PASSWORD,
                    name: str = "Prof. Ada") -> User:
    return make_user(db, email, name=name, role="instructor", password=password)


def make_course(db, instructor: User | None = None, slug: str = "cnn101",
                title: str = "Deep learning from scratch") -> Course:
    """A course, with `instructor` (if any) enrolled as its instructor."""
    course = Course(slug=slug, title=title)
    db.add(course)
    db.flush()
    if instructor is not None:
        enroll(db, course, instructor, "instructor")
    return course


def make_student(db, course: Course, email: str, name: str = "", number: str = "") -> tuple[User, str]:
    """A student enrolled in `course`, and an API token for them."""
    user = make_user(db, email, name=name)
    enroll(db, course, user, "student", number)
    return user, credentials.issue_api_token(db, user, "test")


def make_assignment(db, course: Course, slug: str = "cnn-spatial", *, title: str = "Module 09: spatial.py",
                    spec_toml: str | None = None, stages: list[str] | None = None, due_at=None,
                    late_policy: dict | None = None, daily_limit: int = 50, limits: dict | None = None) -> Assignment:
    """An assignment graded by `spec_toml` (default: the module's spec) over `stages` (default: correctness)."""
    spec_toml = spec_toml or default_spec_toml()
    summary = summarize_spec(spec_toml, stages or ["correctness"])
    assignment = Assignment(course_id=course.id, slug=slug, title=title, spec_toml=spec_toml, spec=summary.parsed,
                            spec_version=summary.version, due_at=due_at,
                            late_policy={"penalty_per_day": 0.1, "max_late_days": 3} if late_policy is None
                            else late_policy,
                            daily_submission_limit=daily_limit, limits=limits or {},
                            stage_weights=summary.stage_weights, max_score=summary.max_score,
                            pass_mark=summary.pass_mark)
    db.add(assignment)
    db.flush()
    return assignment


def result_json(score: float, max_score: float, *, failed: int = 0, accuracy: float | None = None,
                status: str = "graded") -> dict[str, Any]:
    """A GradingResult's JSON with `failed` failing checks and, optionally, a CIFAR-10 stage."""
    tests = [{"name": f"conv2d.forward.case{i}", "stage": "correctness", "score": 0.0 if i < failed else 1.0,
              "max_score": 1.0, "status": "failed" if i < failed else "passed", "visibility": "visible",
              "output": f"Output differs at [0, {i}, 1, 1]: expected 0.5, got 0.25. Check the padding." if i < failed
              else ""} for i in range(4)]
    stages = [{"name": "correctness", "score": score, "max_score": max_score, "status": status, "duration_s": 3.2,
               "message": "", "details": {}}]
    if accuracy is not None:
        # The shape grader/training/judging.py writes: the training record under details["cifar10"].
        curve = [{"epoch": e, "loss": 2.0 / e, "train_accuracy": accuracy * e / 5, "lr": 0.01, "epoch_s": 60.0}
                 for e in range(1, 6)]
        stages.append({"name": "cifar10", "score": 0.0, "max_score": 0.0, "status": "graded", "duration_s": 600.0,
                       "message": "", "details": {"cifar10": {"test_accuracy": accuracy, "curve": curve,
                                                              "epochs": len(curve)}}})
    return {"score": score, "max_score": max_score, "status": status, "stages": stages, "tests": tests,
            "grader_version": "0.1.0", "message": ""}


def make_submission(db, assignment: Assignment, user: User, *, score: float | None = None,
                    status: str = "graded", signed: bool = True, source: bytes | None = None,
                    accuracy: float | None = None, failed: int = 0) -> Submission:
    """A submission with one run: finished (`score` given) and signed, or queued/running (`status`)."""
    source = source or STUB_SOURCE
    submission = Submission(assignment=assignment, user=user, filename="spatial.py", content=source,
                            size_bytes=len(source), sha256=hashlib.sha256(source).hexdigest(), created_at=utcnow())
    db.add(submission)
    db.flush()
    result = result_json(score, assignment.max_score, failed=failed, accuracy=accuracy, status=status) \
        if score is not None else None
    make_run(db, submission, status=status, result=result, signed=signed)
    return submission


def make_run(db, submission: Submission, *, status: str = "graded", result: dict[str, Any] | None = None,
             batch_id: str | None = None, signed: bool = True, grader_version: str = "0.1.0") -> GradingRun:
    """A run of `submission`: finished with `result` (its tests stored, signed unless `signed` is False) or, without
    a result, queued/running as `status` says. With `batch_id` it is an unapplied preview of a regrade batch."""
    run = GradingRun(submission=submission, status=status, stage="correctness", queue="correctness",
                     kind="preview" if batch_id else "submit", applied=batch_id is None, batch_id=batch_id,
                     grader_version=grader_version, spec_version=submission.assignment.spec_version)
    db.add(run)
    db.flush()
    if result is not None:
        run.result, run.score, run.max_score = result, result["score"], result["max_score"]
        run.started_at = run.finished_at = utcnow()
        for test in result["tests"]:
            db.add(TestResultRow(run_id=run.id, name=test["name"], stage=test["stage"], status=test["status"],
                                 score=test["score"], max_score=test["max_score"]))
        db.flush()
        run.signature = sign_run(run) if signed else ""
    db.flush()
    return run


@dataclass
class Seed:
    """The ids and secrets of a seeded course (objects are re-read per session by id)."""

    instructor_id: int
    course_slug: str
    assignment_slug: str
    student_id: int
    student_token: str
    badge_token: str
    other_student_id: int
    other_student_token: str


def seed_course(db) -> Seed:
    """An instructor, a course with a correctness-only assignment, two students, a badge token for the first."""
    instructor = make_instructor(db)
    course = make_course(db, instructor)
    assignment = make_assignment(db, course)
    student, token = make_student(db, course, "ann@example.edu", "Ann Lovelace", "s001")
    other, other_token = make_student(db, course, "bob@example.edu", "Bob Babbage", "s002")
    badge = credentials.badge_token_for(db, student, assignment)
    return Seed(instructor.id, course.slug, assignment.slug, student.id, token, badge.token, other.id, other_token)


@dataclass
class World:
    """A course with an instructor, two students and one assignment, with their API tokens."""

    course: str
    assignment: str
    instructor_token: str
    alice_token: str
    bob_token: str
    alice_id: int
    bob_id: int
    instructor_email: str = INSTRUCTOR_EMAIL
    instructor_password: str = INSTRUCTOR_PASSWORD

    def headers(self, who: str) -> dict[str, str]:
        token = {"instructor": self.instructor_token, "alice": self.alice_token, "bob": self.bob_token}[who]
        return {"Authorization": f"Bearer {token}"}


def make_world(*, due_at=None, daily_limit: int = 50, stages: list[str] | None = None, slug: str = "spatial-hw",
               late_policy: dict | None = None, spec_toml: str | None = None) -> World:
    """Create the world in its own transaction (the API's own creation paths are tested separately)."""
    from grader.store.db import session_scope

    with session_scope() as db:
        instructor = make_instructor(db, name="Prof")
        course = make_course(db, instructor, slug="cnn-101", title="CNN 101")
        alice, alice_token = make_student(db, course, "alice@example.edu", "Alice", "s1")
        bob, bob_token = make_student(db, course, "bob@example.edu", "Bob", "s2")
        make_assignment(db, course, slug, title="Spatial", spec_toml=spec_toml, stages=stages, due_at=due_at,
                        late_policy=late_policy or {"penalty_per_day": 0.1, "max_late_days": 2},
                        daily_limit=daily_limit, limits={"training_cpu_minutes_per_day": 30})
        return World(course=course.slug, assignment=slug, instructor_token=credentials.issue_api_token(db, instructor),
                     alice_token=alice_token, bob_token=bob_token, alice_id=alice.id, bob_id=bob.id)


def admin_headers(email: str = "admin@example.edu") -> dict[str, str]:
    """Bearer headers of a new site admin (the only callers who see /metrics and /readyz details)."""
    from grader.store.db import session_scope

    with session_scope() as db:
        admin = User(email=email, name="Site admin", role="admin")
        db.add(admin)
        db.flush()
        return {"Authorization": f"Bearer {credentials.issue_api_token(db, admin)}"}
