"""A running service for `grader submit`: uvicorn and a real Celery worker grading in the real sandbox."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "web"))

from h7_support import ARTIFACTS, TEST_SECRET_KEY, environment, fresh_database, live_service, seed_course  # noqa: E402

from grader.store.db import session_scope  # noqa: E402


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """(LiveService, Seed): the course seeded with a correctness-only assignment, servers running."""
    with fresh_database("h7_cli") as url:
        with environment(DATABASE_URL=url, SECRET_KEY=TEST_SECRET_KEY, ENVIRONMENT="test"):
            with session_scope() as db:
                seed = seed_course(db)
            with live_service(url, ARTIFACTS / "cli-logs") as live:
                yield live, seed
