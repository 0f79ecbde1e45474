"""Fixtures of the dashboard and badge tests: a fresh Postgres database per session, emptied per test."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from h7_support import TEST_SECRET_KEY, environment, fresh_database, seed_course, truncate_all

from api.main import create_app
from api.web.security import login_throttle
from grader.store.db import session_scope


@pytest.fixture(scope="session")
def web_database(tmp_path_factory):
    # The broker is a throw-away folder: runs queued by these tests are never graded (no worker here).
    data_dir = tmp_path_factory.mktemp("h7-web-data")
    with fresh_database("h7_web") as url:
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
def client(db_ready):
    login_throttle.reset()  # failed logins of earlier tests must not throttle this one
    with TestClient(create_app(), base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client
