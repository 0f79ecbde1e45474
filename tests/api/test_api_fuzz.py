"""Schemathesis fuzzes every /api/v1 operation of the real app (ASGI, real Postgres and Redis) as every kind of
caller, with valid and invalid tokens: no response may be a 5xx.

Every generated request is sent once per token kind (five valid callers' tokens, an unknown token, a malformed
header, none).
Half of the generated cases keep Schemathesis's random path parameters; the other half point at real objects of
course A (tests/api/course_world.py), so the fuzzer reaches past the 404s into the code that does the work.
Hypothesis is derandomized, so a run is reproducible. The number of requests tried is written to
test-artifacts/api-fuzz.json (README quotes it).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from grader.settings import PROJECT_ROOT
from tests.api.course_world import Matrix, build_world, truncate
from tests.service_fixtures import apply_environment

EXAMPLES_PER_OPERATION = 12  # each sent with 8 token kinds: ~30 operations x 12 x 8 = a few thousand requests
TOKEN_KINDS = ("student", "ta", "instructor", "other_instructor", "admin", "unknown", "malformed", "none")
REPORT = PROJECT_ROOT / "test-artifacts" / "api-fuzz.json"
STATUSES: Counter = Counter()


@pytest.fixture(scope="module")
def fuzz_world(service_env):
    import api.routes.submissions as submission_routes

    apply_environment(service_env)
    truncate()
    world = Matrix()
    build_world(world)
    # A progress stream lasts until grading ends (never here: no worker runs); end each after a moment.
    saved, submission_routes.STREAM_MAX_SECONDS = submission_routes.STREAM_MAX_SECONDS, 0.5
    yield world
    submission_routes.STREAM_MAX_SECONDS = saved
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"requests": sum(STATUSES.values()), "by_status": dict(sorted(STATUSES.items())),
                                  "server_errors": sum(n for code, n in STATUSES.items() if code >= 500)}, indent=2))
    truncate()


@pytest.fixture(scope="module")
def api_schema(fuzz_world):
    from api.main import create_app

    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", create_app()).include(path_regex="^/api/v1/")


schema = schemathesis.pytest.from_fixture("api_schema")


def _real_objects(world: Matrix, path: str) -> dict[str, object]:
    slug = world.course if path.startswith("/api/v1/courses/") else world.assignment
    return {"slug": slug, "submission_id": world.submission_id, "run_id": world.run_id,
            "batch_id": world.batches[("api", "instructor")], "user_id": world.user_ids["student"]}


def _authorization(world: Matrix, kind: str) -> str | None:
    if kind == "unknown":
        return "Bearer gt_" + "A" * 43
    if kind == "malformed":
        return "Basic bm90OmEtdG9rZW4="
    if kind == "none":
        return None
    return f"Bearer {world.tokens[kind]}"


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, fuzz_world):
    """Every generated request, sent once per token kind."""
    if case.path_parameters and sum(STATUSES.values()) % 2 == 0:
        real = _real_objects(fuzz_world, case.path)
        case.path_parameters = {name: real.get(name, value) for name, value in case.path_parameters.items()}
    headers = {key: value for key, value in (case.headers or {}).items() if key.lower() != "authorization"}
    for kind in TOKEN_KINDS:
        authorization = _authorization(fuzz_world, kind)
        case.headers = {**headers, **({"Authorization": authorization} if authorization else {})}
        response = case.call()
        STATUSES[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])
