"""Fixtures of the dashboard and badge tests: a fresh Postgres database per module, emptied per test."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from grader import tasks
from grader.store.db import session_scope
from tests.factories import seed_course
from tests.live_service import TEST_SECRET_KEY, environment, fresh_database, truncate_all


@pytest.fixture(scope="module")
def web_database(tmp_path_factory):
    """Module-scoped, so the environment it sets never outlives these tests in a whole-suite run."""
    data_dir = tmp_path_factory.mktemp("web-data")
    with fresh_database("web_tests") as url:
        with environment(DATABASE_URL=url, SECRET_KEY=TEST_SECRET_KEY, ENVIRONMENT="test", BROKER_URL="",
                         DATA_DIR=str(data_dir)):
            yield url


@pytest.fixture
def db_ready(web_database):
    truncate_all()
    yield


@pytest.fixture
def seed(db_ready):
    with session_scope() as db:
        return seed_course(db)


@pytest.fixture
def published(monkeypatch) -> list[tuple[int, str]]:
    """Runs the routes publish, recorded instead of sent: no worker runs in these tests, and jobs must not leak
    into a broker that other tests' workers share (the real broker and worker are in tests/grader/commands and
    tests/api/web/browser)."""
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(tasks, "publish", lambda run_id, queue: sent.append((run_id, queue)))
    return sent


@pytest.fixture
def client(db_ready, published):
    with TestClient(create_app(), base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client
