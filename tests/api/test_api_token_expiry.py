"""Tokens issued for a password (`POST /api/v1/auth/token`) expire after API_TOKEN_LOGIN_TTL_SECONDS (default 30
days) and the answer says when; an expired token is a 401 that says it expired. Real API and Postgres; time passing
is the token's stored expiry moved into the past."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from grader.settings import get_settings
from grader.store.credentials import token_sha256
from grader.store.db import session_scope
from grader.store.models import ApiToken, utcnow


def _login(client, world):
    response = client.post("/api/v1/auth/token", json={"email": world.instructor_email,
                                                       "password": world.instructor_password})
    assert response.status_code == 201, response.text
    return response.json()


def test_a_password_token_expires_after_the_login_ttl(client, world):
    assert get_settings().api_token_login_ttl_seconds == 30 * 24 * 3600
    issued = _login(client, world)
    expires_at = datetime.fromisoformat(issued["expires_at"])
    assert abs((expires_at - (utcnow() + timedelta(days=30))).total_seconds()) < 60
    headers = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    with session_scope() as db:
        db.execute(update(ApiToken).where(ApiToken.token_sha256 == token_sha256(issued["token"]))
                   .values(expires_at=utcnow() - timedelta(seconds=1)))
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    detail = refused.json()["detail"]
    assert "expired" in detail and "/api/v1/auth/token" in detail, detail


def test_an_unknown_token_still_gets_the_plain_401(client, world):
    refused = client.get("/api/v1/me", headers={"Authorization": "Bearer gt_not-a-token"})
    assert refused.status_code == 401 and "expired" not in refused.json()["detail"]
