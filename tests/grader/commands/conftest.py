"""A running service for `grader submit`: uvicorn and a real Celery worker grading in the real sandbox."""

from __future__ import annotations


import pytest

from grader.store.db import session_scope
from tests.factories import seed_course
from tests.live_service import ARTIFACTS, TEST_SECRET_KEY, environment, fresh_database, live_service


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(LiveService, Seed): the course seeded with a correctness-only assignment, servers running."""
    with fresh_database("cli_tests") as url:
        with environment(DATABASE_URL=url, SECRET_KEY=TEST_SECRET_KEY, ENVIRONMENT="test"):
            with session_scope() as db:
                seed = seed_course(db)
            with live_service(url, ARTIFACTS / "cli-logs") as live:
                yield live, seed
