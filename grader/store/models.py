"""SQLAlchemy 2 typed models of the service. The schema itself is created only by Alembic migrations."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, LargeBinary,
                        String, Text, TypeDecorator, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("queued", "running", "graded", "error", "timeout")
USER_ROLES = ("admin", "instructor", "student")  # site-wide: only "admin" grants access (grader/services/policy.py)
COURSE_ROLES = ("instructor", "ta", "student")  # per course, in Enrollment.role: the source of truth for access
FINISHED_STATUSES = ("graded", "error", "timeout")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime (naive input is taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timestamps stored as UTC and always read back aware, whatever the database (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime()}


class Course(Base):
    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    ta_may_override: Mapped[bool] = mapped_column(Boolean, default=False)  # TAs may set scores by hand
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    assignments: Mapped[list[Assignment]] = relationship(back_populates="course", order_by="Assignment.id")
    enrollments: Mapped[list[Enrollment]] = relationship(back_populates="course")


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('admin', 'instructor', 'student')", name="ck_users_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # login name; lower-cased
    name: Mapped[str] = mapped_column(String(200), default="")
    # USER_ROLES: "admin" (every course), "instructor" (may create courses), "student"; what anyone else may do in
    # a course is their Enrollment.role there.
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2id; staff and admins log in with it
    # Dashboard cookies carry the version they were issued under; raising it ends every session of the user.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class ApiToken(Base):
    """A bearer token; only its sha256 is stored, the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]  # None: valid until revoked
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("course_id", "user_id"),
                      CheckConstraint("role IN ('instructor', 'ta', 'student')", name="ck_enrollments_role"))

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16), default="student")  # one of COURSE_ROLES
    student_number: Mapped[str] = mapped_column(String(64), default="")  # the LMS's id, for grade export
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    course: Mapped[Course] = relationship(back_populates="enrollments")
    user: Mapped[User] = relationship()


class Assignment(Base):
    __tablename__ = "assignments"

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    spec_toml: Mapped[str] = mapped_column(Text)  # the grading spec as the instructor wrote it
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the same, parsed
    spec_version: Mapped[str] = mapped_column(String(64))  # sha256 of spec_toml (first 16 hex digits)
    due_at: Mapped[datetime | None]
    # {"penalty_per_day": 0.1, "max_late_days": 3}: fraction of the score lost per started late day; none after
    late_policy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    daily_submission_limit: Mapped[int] = mapped_column(Integer, default=50)
    # {"training_cpu_minutes_per_day": 120, "memory_bytes": ..., "wall_seconds": ...}
    limits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    stage_weights: Mapped[dict[str, Any]] = mapped_column(default=dict)  # stage name -> points
    max_score: Mapped[float] = mapped_column(Float, default=100.0)
    pass_mark: Mapped[float] = mapped_column(Float, default=100.0)  # score at or above which a submission passes
    # The last self-test of the instructor's reference solution (grader/self_test.py SelfTest.to_json() plus
    # "at" and "spec_version"); None when none was run.
    self_test: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    leaderboard: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")  # opt-in, per assignment
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    course: Mapped[Course] = relationship(back_populates="assignments")

    @property
    def stages(self) -> list[str]:
        return list(self.stage_weights) or ["correctness"]


class Extension(Base):
    """A new due date for one student in one assignment; their lateness is judged against it."""

    __tablename__ = "extensions"
    __table_args__ = (UniqueConstraint("assignment_id", "user_id", name="uq_extension_assignment_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    due_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(500), default="")
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    assignment: Mapped[Assignment] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])


class LateDayGrant(Base):
    """Late-day tokens of one student in one course: each forgives one started late day, spent in due-date order."""

    __tablename__ = "late_day_grants"
    __table_args__ = (UniqueConstraint("course_id", "user_id", name="uq_late_days_course_user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    granted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SimilarityReport(Base):
    """Pairwise similarity of an assignment's latest submissions, computed in the background (staff only)."""

    __tablename__ = "similarity_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued running done failed
    starter: Mapped[bytes] = mapped_column(LargeBinary, default=b"")  # the handed-out file the instructor uploaded
    done_pairs: Mapped[int] = mapped_column(Integer, default=0)
    total_pairs: Mapped[int] = mapped_column(Integer, default=0)
    # [{"first": submission id, "second": ..., "score", "first_share", "second_share", "first_spans": [[s, e]...]}]
    pairs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    assignment: Mapped[Assignment] = relationship()


class LeaderboardName(Base):
    """The pseudonym a student chose for an assignment's leaderboard; only students who chose one are listed."""

    __tablename__ = "leaderboard_names"
    __table_args__ = (UniqueConstraint("assignment_id", "user_id", name="uq_leaderboard_user"),
                      UniqueConstraint("assignment_id", "name", name="uq_leaderboard_name"))

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BadgeToken(Base):
    """The unguessable token of one student's badge for one assignment; it reveals nothing else."""

    __tablename__ = "badge_tokens"
    __table_args__ = (UniqueConstraint("user_id", "assignment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship()
    assignment: Mapped[Assignment] = relationship()


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submissions_assignment_user", "assignment_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(200), default="spatial.py")
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    repo: Mapped[str] = mapped_column(String(500), default="")
    commit: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)  # upload time: lateness is judged by this
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    late_days: Mapped[int] = mapped_column(Integer, default=0)  # started days after the due date

    assignment: Mapped[Assignment] = relationship()
    user: Mapped[User] = relationship()
    runs: Mapped[list[GradingRun]] = relationship(back_populates="submission", order_by="GradingRun.id")


class GradingRun(Base):
    """One grading of one submission. `stage` is the stage it is at (or ended in); `queue` where it waits."""

    __tablename__ = "grading_runs"
    __table_args__ = (Index("ix_grading_runs_status_queue", "status", "queue"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued running graded error timeout
    stage: Mapped[str] = mapped_column(String(32), default="correctness")
    queue: Mapped[str] = mapped_column(String(32), default="correctness")  # "correctness" or "training"
    kind: Mapped[str] = mapped_column(String(16), default="submit")  # submit regrade preview override reuse
    applied: Mapped[bool] = mapped_column(Boolean, default=True)  # False for a regrade preview not yet confirmed
    batch_id: Mapped[str | None] = mapped_column(String(32), index=True)  # whole-assignment regrade batch
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    grader_version: Mapped[str] = mapped_column(String(32), default="")
    spec_version: Mapped[str] = mapped_column(String(64), default="")
    image_digest: Mapped[str] = mapped_column(String(100), default="")
    backend: Mapped[str] = mapped_column(String(32), default="")
    worker: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)  # last time it was put in its queue
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    deadline: Mapped[datetime | None]  # queued: republish after; running: lease end (renewed by heartbeat)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # claims so far; the claim number guards writes
    # Infrastructure faults (engine, connection, timeout, OS errors) met so far, and when the first one of the
    # current streak happened: while set, the run is "delayed" (waiting out the fault), never graded by it.
    infra_faults: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    delayed_since: Mapped[datetime | None]
    stage_seconds: Mapped[dict[str, Any]] = mapped_column(default=dict)  # stage -> wall seconds it took
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # GradingResult.to_json(), partial while running
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    signature: Mapped[str] = mapped_column(String(128), default="")
    reused_from_run_id: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")

    submission: Mapped[Submission] = relationship(back_populates="runs")
    tests: Mapped[list[TestResultRow]] = relationship(back_populates="run", order_by="TestResultRow.id")

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def display_status(self) -> str:
        """The status shown to people: a queued run waiting out an infrastructure fault is "delayed"."""
        return "delayed" if self.status == "queued" and self.delayed_since is not None else self.status


class TestResultRow(Base):
    """One check of one finished run, for analytics (which checks fail most)."""

    __tablename__ = "test_results"
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("grading_runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    score: Mapped[float] = mapped_column(Float)
    max_score: Mapped[float] = mapped_column(Float)
    visibility: Mapped[str] = mapped_column(String(20), default="visible")

    run: Mapped[GradingRun] = relationship(back_populates="tests")


class RunEvent(Base):
    """A progress or status event of a run, as streamed to the student."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("grading_runs.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(16))  # "progress", "status" or "done"
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Append-only, hash-chained record of score and deadline changes; triggers in the migration refuse UPDATE and
    DELETE."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))  # "regrade", "override", "extension", "due_date", "lateness"...
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class ThrottleEntry(Base):
    """One failed login in a moving window of `limits`, when no Redis holds the throttles (grader/throttle.py)."""

    __tablename__ = "throttle_entries"
    __table_args__ = (Index("ix_throttle_entries_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255))
    at: Mapped[float] = mapped_column(Float)  # Unix time of the entry
    expires_at: Mapped[float] = mapped_column(Float, index=True)  # Unix time after which it counts for nothing


class StreamSlot(Base):
    """A live progress stream of a user; a user holds at most `live_streams_per_user` unexpired slots."""

    __tablename__ = "stream_slots"
    __table_args__ = (UniqueConstraint("user_id", "slot"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(64))  # random id of the stream holding it
    expires_at: Mapped[datetime]  # renewed while the stream lives; a crashed server's slots lapse
