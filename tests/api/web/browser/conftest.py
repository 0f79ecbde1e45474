"""A running service (uvicorn + Celery worker + sandbox) and Debian's Chromium driven by Playwright.

Chromium is the system package (/usr/bin/chromium); Playwright never downloads a browser here.
"""

from __future__ import annotations

import os

import pytest

from grader.store.db import session_scope
from tests.factories import make_course, make_instructor
from tests.live_service import ARTIFACTS, TEST_SECRET_KEY, environment, fresh_database, live_service

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def service():
    """The live service with an instructor and an empty course (everything else is done in the browser)."""
    with fresh_database("browser_tests") as url:
        with environment(DATABASE_URL=url, SECRET_KEY=TEST_SECRET_KEY, ENVIRONMENT="test"):
            with session_scope() as db:
                make_course(db, make_instructor(db))
            # TEST_REDIS_DB (default 12), as in test_browser_student.py: another checkout's browser tests on the same
            # Redis use their own database, so their worker never takes this service's runs.
            broker_db = int(os.environ.get("TEST_REDIS_DB", "12"))
            with live_service(url, ARTIFACTS / "browser-logs", broker_db=broker_db) as live:
                yield live


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    (ARTIFACTS / "browser").mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    yield page
    context.close()
