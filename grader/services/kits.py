"""Course kits and self-tests as use cases: an instructor uploads the course's tinytorch package, and checks an
assignment's reference solution before students see the assignment."""

from __future__ import annotations

from sqlalchemy.orm import Session

from grader.kits import MAX_UPLOAD_BYTES, KitError, StoredKit, runner_for, store_kit
from grader.self_test import SelfTest, run_self_test
from grader.services.errors import Invalid, TooLarge
from grader.settings import get_settings
from grader.spec import SpecError, parse_spec
from grader.store.models import Assignment, utcnow
from sandbox.runner import InfrastructureError


def upload_kit(raw: bytes) -> StoredKit:
    """Store a kit archive (content-addressed; the same package twice is stored once)."""
    if len(raw) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"The kit archive is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB.")
    try:
        return store_kit(raw, get_settings())
    except KitError as error:
        raise Invalid(str(error)) from error


def self_test(db: Session, assignment: Assignment, solution: bytes) -> SelfTest:
    """Grade the reference solution under the assignment's spec and kit; keep the outcome on the assignment."""
    settings = get_settings()
    if not solution.strip():
        raise Invalid("The reference solution is empty: upload the spatial.py that should earn every point.")
    if len(solution) > settings.submission_max_bytes:
        raise TooLarge(f"The reference solution is larger than {settings.submission_max_bytes} bytes.")
    try:
        spec = parse_spec(assignment.spec_toml, source=f"assignment {assignment.slug}")
        outcome = run_self_test(spec, solution, runner=runner_for(spec, settings), settings=settings)
    except (SpecError, KitError) as error:
        raise Invalid(str(error)) from error
    except InfrastructureError as error:
        raise Invalid(f"The self-test could not run: the sandbox is not available ({error}).") from error
    assignment.self_test = {**outcome.to_json(), "at": utcnow().isoformat(), "spec_version": assignment.spec_version}
    db.flush()
    return outcome


def require_passing_self_test(db: Session, assignment: Assignment, solution: bytes) -> SelfTest:
    """The self-test of a new assignment: refuse it (nothing is kept) unless the solution earns every point."""
    outcome = self_test(db, assignment, solution)
    if not outcome.passed:
        raise Invalid(outcome.message)
    return outcome
