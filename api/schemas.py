"""Pydantic schemas of the API (`XCreate` in, `XPublic` out), separate from the store's models."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Slug = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="lower-case letters, digits and dashes")


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    email: str
    name: str
    role: Literal["admin", "instructor", "student"]  # site-wide; roles in a course are per enrollment


class TokenCreate(BaseModel):
    email: str
    password: str
    label: str = "api"


class TokenPublic(BaseModel):
    token: str  # shown once; only its sha256 is stored
    user: UserPublic
    expires_at: datetime | None = None  # after this the token is refused (None: valid until revoked)


class CourseCreate(BaseModel):
    slug: str = Slug
    title: str = Field(min_length=1, max_length=200)
    ta_may_override: bool = Field(False, description="the course's TAs may set scores by hand")


class CourseUpdate(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    ta_may_override: bool | None = None


class CoursePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    slug: str
    title: str
    ta_may_override: bool
    created_at: datetime


class LatePolicy(BaseModel):
    penalty_per_day: float = Field(0.0, ge=0, le=1, description="fraction of the score lost per started late day")
    max_late_days: int = Field(0, ge=0, description="late uploads after this many days earn nothing")


class AssignmentCreate(BaseModel):
    slug: str = Slug
    title: str = Field(min_length=1, max_length=200)
    spec_toml: str | None = Field(None, description="grading spec; the default spec when omitted")
    due_at: datetime | None = None
    late_policy: LatePolicy = LatePolicy()
    daily_submission_limit: int | None = Field(None, ge=1, le=10000)
    training_cpu_minutes_per_day: float | None = Field(None, ge=0)
    pass_mark: float | None = Field(None, ge=0, description="points needed to pass (a value up to 1 is a "
                                                             "fraction of full marks); default: the spec's")
    stages: list[Literal["correctness", "cifar10"]] | None = Field(
        None, description="stages to run (default: every stage of the spec that carries points)")
    reference_solution: str | None = Field(
        None, max_length=256 * 1024, description="the instructor's spatial.py: when given, the assignment is "
        "created only if it earns every correctness point (the self-test)")


class AssignmentUpdate(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    due_at: datetime | None = None
    late_policy: LatePolicy | None = None
    daily_submission_limit: int | None = Field(None, ge=1, le=10000)
    pass_mark: float | None = Field(None, ge=0)


class AssignmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    slug: str
    title: str
    course: str
    due_at: datetime | None
    late_policy: dict[str, Any]
    daily_submission_limit: int
    limits: dict[str, Any]
    stage_weights: dict[str, Any]
    stages: list[str]
    max_score: float
    pass_mark: float
    spec_version: str
    created_at: datetime
    self_test: dict[str, Any] | None = None


class SelfTestFailure(BaseModel):
    check: str
    output: str


class SelfTestPublic(BaseModel):
    """The last self-test of an assignment's reference solution."""

    passed: bool
    score: float
    max_score: float
    failing: list[SelfTestFailure]
    message: str
    at: str | None = None
    spec_version: str | None = None


class KitUploaded(BaseModel):
    kit: str = Field(description='reference for the spec: [assignment] kit = "sha256:..."')
    files: int


class AssignmentWithSpec(AssignmentPublic):
    spec_toml: str


class RosterEntry(BaseModel):
    email: str
    name: str
    student_number: str
    user_id: int
    role: str  # in this course: instructor, ta or student
    token: str | None  # issued now (shown once); None for a student who already had one


class RosterImportResult(BaseModel):
    created: int
    existing: int
    students: list[RosterEntry]


class EnrollmentPublic(BaseModel):
    user_id: int
    email: str
    name: str
    role: str
    student_number: str


class SubmissionAccepted(BaseModel):
    submission_id: int
    run_id: int
    status: str
    status_url: str
    queue_position: int | None
    estimated_start: datetime | None
    late: bool
    reused: bool = False  # an identical earlier file's result was reused


class RunPublic(BaseModel):
    id: int
    submission_id: int
    status: str
    stage: str
    queue: str
    kind: str
    applied: bool
    batch_id: str | None
    score: float | None
    max_score: float | None
    grader_version: str
    spec_version: str
    image_digest: str
    backend: str
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stage_seconds: dict[str, Any]
    signed: bool
    reused_from_run_id: int | None
    message: str
    queue_position: int | None = None


class SubmissionPublic(BaseModel):
    id: int
    assignment: str
    user_id: int
    user_email: str
    filename: str
    size_bytes: int
    sha256: str
    repo: str
    commit: str
    status: str
    score: float | None  # the counted score: signed runs only, late penalty applied (grader/services/scores.py)
    max_score: float | None
    passed: bool | None
    earned_score: float | None = None  # what the run scored before the late penalty
    result: dict[str, Any] | None
    queue_position: int | None
    estimated_start: datetime | None
    late: bool
    late_days: int
    created_at: datetime
    runs: list[RunPublic]


class SubmissionSummary(BaseModel):
    id: int
    assignment: str
    user_id: int
    user_email: str
    status: str
    score: float | None
    max_score: float | None
    late: bool
    created_at: datetime


class RegradeAccepted(BaseModel):
    run_id: int
    status_url: str


class RegradeBatchAccepted(BaseModel):
    batch_id: str
    runs: int
    preview_url: str


class RegradeChange(BaseModel):
    submission_id: int
    user_id: int
    user_email: str
    run_id: int
    status: str
    old_score: float | None
    new_score: float | None
    delta: float | None


class RegradePreview(BaseModel):
    batch_id: str
    assignment: str
    finished: int
    total: int
    ready: bool  # every run of the batch finished
    applied: bool
    changes: list[RegradeChange]  # only submissions whose score would change


class OverrideCreate(BaseModel):
    score: float = Field(ge=0)
    reason: str = Field(min_length=3, max_length=1000)


class VerifyPublic(BaseModel):
    run_id: int
    valid: bool
    signature: str
    signed_fields: dict[str, Any]


class AuditEntryPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    actor_id: int | None
    action: str
    entity: str
    entity_id: int
    data: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPublic(BaseModel):
    chain_valid: bool
    first_broken_id: int | None
    entries: list[AuditEntryPublic]


class BadgeLinkPublic(BaseModel):
    """Where a student's badge lives and what to paste into a README."""

    assignment: str
    badge_url: str
    json_url: str
    shields_url: str  # the same badge rendered by shields.io from the JSON form
    markdown: str
