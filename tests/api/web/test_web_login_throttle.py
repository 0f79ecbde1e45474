"""The dashboard login throttle without Redis: held in the (real Postgres) database, shared by API processes."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from grader.store.db import session_scope
from grader.store.models import ThrottleEntry
from grader.store.throttle_storage import DatabaseMovingWindowStorage
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _login(client: TestClient, email: str, password: str):
    token = CSRF.search(client.get("/login").text).group(1)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def test_failures_in_one_process_count_in_another(seed):
    # Two app instances stand for two API processes: nothing is shared between them but the database.
    first = TestClient(create_app(), follow_redirects=False, client=("198.51.100.1", 1))
    second = TestClient(create_app(), follow_redirects=False, client=("198.51.100.2", 1))
    for i in range(10):
        assert _login(first if i % 2 else second, INSTRUCTOR_EMAIL, "guess").status_code == 401
    refused = _login(second, INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD)
    assert refused.status_code == 429 and "Too many failed logins" in refused.text
    assert 840 <= int(refused.headers["Retry-After"]) <= 900
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(ThrottleEntry)) == 20  # 10 account + 2 x 5 client
        assert "198.51.100" not in " ".join(db.scalars(select(ThrottleEntry.key)))  # keys are opaque


def test_a_parallel_burst_gets_no_more_than_ten_guesses(seed):
    client = TestClient(create_app(), follow_redirects=False, client=("198.51.100.3", 1))
    token = CSRF.search(client.get("/login").text).group(1)

    def guess(i: int) -> int:
        return client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": f"guess {i}",
                                           "csrf_token": token}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(guess, range(24)))
    assert statuses.count(401) == 10 and statuses.count(429) == 14


def test_the_table_stays_bounded(db_ready):
    storage = DatabaseMovingWindowStorage(max_rows=50)
    for i in range(120):
        assert storage.acquire_entry(f"key-{i % 40}", limit=3, expiry=900)
    assert not storage.acquire_entry("key-0", limit=3, expiry=900)  # a full window refuses
    storage._last_prune = 0.0
    assert storage.acquire_entry("fresh", limit=3, expiry=900)
    with session_scope() as db:
        assert db.scalar(select(func.count()).select_from(ThrottleEntry)) <= 51
    assert storage.acquire_entry("short", limit=1, expiry=1)
    time.sleep(1.1)
    assert storage.acquire_entry("short", limit=1, expiry=1)  # the old entry has left the window
