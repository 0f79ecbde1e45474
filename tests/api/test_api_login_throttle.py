"""The password endpoint's throttle, held in the real Redis (BROKER_URL is Redis here), per account and per client."""

from __future__ import annotations

import os

import pytest
import redis
from fastapi.testclient import TestClient

from grader.settings import get_settings
from grader.store import credentials
from tests.service_fixtures import REDIS_URL

WINDOW_SECONDS = 15 * 60


@pytest.fixture
def app(clean_db):
    from api.main import create_app

    return create_app()


def _client(app, address: str = "198.51.100.7") -> TestClient:
    return TestClient(app, client=(address, 40000))


def _token(client: TestClient, email: str, password: str, **headers: str):
    return client.post("/api/v1/auth/token", json={"email": email, "password": password}, headers=headers)


def test_wrong_passwords_are_refused_with_429_after_ten(app, world):
    client = _client(app)
    statuses = [_token(client, world.instructor_email, f"guess {i}").status_code for i in range(30)]
    assert statuses[:10] == [401] * 10 and set(statuses[10:]) == {429}
    refused = _token(client, world.instructor_email, world.instructor_password)  # even the right one, for now
    assert refused.status_code == 429
    assert 0 < int(refused.headers["Retry-After"]) <= WINDOW_SECONDS
    assert "Try again in" in refused.json()["detail"]


def test_the_account_is_throttled_from_every_client(app, world):
    for i in range(10):
        assert _token(_client(app, f"198.51.100.{i + 1}"), world.instructor_email, "wrong").status_code == 401
    assert _token(_client(app, "203.0.113.99"), world.instructor_email, world.instructor_password).status_code == 429


def test_a_client_is_throttled_across_accounts_including_unknown_ones(app, world):
    client = _client(app)
    for i in range(10):
        assert _token(client, f"nobody{i}@example.edu", "wrong").status_code == 401
    assert _token(client, world.instructor_email, world.instructor_password).status_code == 429
    assert _token(_client(app, "198.51.100.8"), world.instructor_email, world.instructor_password).status_code == 201


def test_a_success_clears_the_account_and_is_not_counted_against_the_client(app, world):
    email, password = world.instructor_email, world.instructor_password
    client = _client(app)
    for _ in range(9):
        assert _token(client, email, "wrong").status_code == 401
    assert _token(client, email, password).status_code == 201
    for _ in range(9):  # the account starts again from zero; the client has 9 failures, not 10
        assert _token(_client(app, "198.51.100.8"), email, "wrong").status_code == 401
    assert _token(client, "nobody@example.edu", "wrong").status_code == 401  # the client's 10th failure
    assert _token(client, email, password).status_code == 429
    office = _client(app, "198.51.100.9")
    for _ in range(12):  # logging in again and again is not a failure
        assert _token(office, email, password).status_code == 201


def test_forwarded_for_is_believed_only_from_trusted_proxies(app, world, monkeypatch):
    client = _client(app, "10.0.0.2")
    for i in range(10):  # a direct client cannot pose as many by sending X-Forwarded-For
        assert _token(client, f"x{i}@example.edu", "wrong", **{"X-Forwarded-For": f"192.0.2.{i}"}).status_code == 401
    assert _token(client, "y@example.edu", "wrong", **{"X-Forwarded-For": "192.0.2.200"}).status_code == 429

    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/24, 10.1.0.1")
    get_settings.cache_clear()
    for i in range(10):  # behind the proxies, the address the last one saw is the client
        response = _token(client, f"z{i}@example.edu", "wrong", **{"X-Forwarded-For": "192.0.2.1, 10.1.0.1"})
        assert response.status_code == 401
    # Addresses a client writes in front of the real one change nothing; another real client is not blocked.
    prepended = _token(client, "w@example.edu", "wrong", **{"X-Forwarded-For": "203.0.113.5, 192.0.2.1"})
    assert prepended.status_code == 429
    assert _token(client, "w@example.edu", "wrong", **{"X-Forwarded-For": "192.0.2.2"}).status_code == 401


def test_unknown_emails_cost_one_argon2_verification_like_known_ones(app, world, monkeypatch):
    calls: list[str] = []
    real = credentials._password_hasher

    class CountingHasher:  # the real argon2 hasher, counted
        def verify(self, password_hash: str, password: str) -> bool:
            calls.append(password_hash)
            return real.verify(password_hash, password)

    monkeypatch.setattr(credentials, "_password_hasher", CountingHasher())
    client = _client(app)
    for email in (world.instructor_email, "nobody@example.edu", "alice@example.edu"):
        assert _token(client, email, "wrong").status_code == 401
    assert len(calls) == 3


def test_throttle_state_lives_in_redis_with_an_expiry(app, world):
    client = _client(app)
    for i in range(12):
        _token(client, f"spray{i}@example.edu", "wrong")
    store = redis.Redis.from_url(REDIS_URL)
    keys = [key for key in store.scan_iter("LIMITS*")]
    assert keys, "no throttle keys in Redis"
    for key in keys:
        assert 0 < store.ttl(key) <= WINDOW_SECONDS and store.llen(key) <= 10
    assert os.environ["BROKER_URL"] == REDIS_URL
