"""`grader admin`, run as a subprocess against a real Postgres database, checked through the API and dashboard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.store.models import ApiToken, Enrollment, User, utcnow
from tests.live_service import TEST_SECRET_KEY, environment, fresh_database, truncate_all

PASSWORD = "a long enough pass phrase"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("admin-data")
    with fresh_database("admin_cli") as url:
        env = dict(DATABASE_URL=url, SECRET_KEY=TEST_SECRET_KEY, ENVIRONMENT="test", BROKER_URL="",
                   DATA_DIR=str(data_dir))
        with environment(**env):
            yield env


@pytest.fixture
def admin(store):
    """Runs `grader admin ...` in a subprocess against the test database; returns the CompletedProcess."""
    truncate_all()

    def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "grader.cli", "admin", *argv], cwd=PROJECT_ROOT,
                              env={**os.environ, **store}, input=stdin, capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
def client(store):
    from api.main import create_app

    with TestClient(create_app(), follow_redirects=False) as test_client:
        yield test_client


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def _dashboard_login(client: TestClient, email: str, password: str) -> None:
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 303, response.text


def test_first_instructor_of_a_new_course(admin, client):
    _ok(admin("create-user", "Prof@Example.edu", "--name", "Prof. Ada", "--role", "instructor",
              "--password-stdin", stdin=PASSWORD + "\n"))
    _ok(admin("create-course", "ml-2027", "--title", "Machine learning 2027"))
    _ok(admin("enroll", "ml-2027", "prof@example.edu", "--role", "instructor"))
    _ok(admin("create-user", "ta@example.edu", "--name", "Tom", "--role", "student"))
    _ok(admin("enroll", "ml-2027", "ta@example.edu", "--role", "ta"))
    with session_scope() as db:
        roles = {(e.user.email, e.role) for e in db.scalars(select(Enrollment))}
    assert roles == {("prof@example.edu", "instructor"), ("ta@example.edu", "ta")}

    response = client.post("/api/v1/auth/token", json={"email": "prof@example.edu", "password": PASSWORD})
    assert response.status_code == 201, response.text
    listing = _ok(admin("list-users"))
    assert "prof@example.edu" in listing and "ml-2027:instructor" in listing and "ml-2027:ta" in listing
    assert "argon2" not in listing and "gt_" not in listing


def test_mistakes_get_a_clear_message_and_change_nothing(admin):
    _ok(admin("create-user", "ann@example.edu", "--name", "Ann", "--role", "student"))
    duplicate = admin("create-user", "ann@example.edu", "--name", "Ann again", "--role", "student")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    assert admin("create-user", "not-an-email", "--name", "X", "--role", "student").returncode == 1
    short = admin("create-user", "p@example.edu", "--name", "P", "--role", "instructor", "--password-stdin",
                  stdin="short\n")
    assert short.returncode == 1 and "12 characters" in short.stderr
    missing = admin("enroll", "no-such-course", "ann@example.edu", "--role", "student")
    assert missing.returncode == 1 and "no-such-course" in missing.stderr
    assert admin("enroll", "x", "ann@example.edu", "--role", "overlord").returncode == 2
    unknown = admin("issue-token", "nobody@example.edu")
    assert unknown.returncode == 1 and "nobody@example.edu" in unknown.stderr
    with session_scope() as db:
        assert [u.email for u in db.scalars(select(User))] == ["ann@example.edu"]


def test_tokens_are_printed_once_expire_and_can_be_revoked(admin, client):
    _ok(admin("create-user", "ann@example.edu", "--name", "Ann", "--role", "student"))
    token = _ok(admin("issue-token", "ann@example.edu", "--label", "laptop")).strip()
    assert token.startswith("gt_") and "\n" not in token
    expiring = _ok(admin("issue-token", "ann@example.edu", "--expires-days", "1")).strip()
    for bearer in (token, expiring):
        assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
    with session_scope() as db:
        rows = db.scalars(select(ApiToken).order_by(ApiToken.id)).all()
        assert rows[0].label == "laptop" and rows[0].expires_at is None
        assert timedelta(hours=23) < rows[1].expires_at - utcnow() <= timedelta(days=1)
        assert token not in {row.token_sha256 for row in rows}  # only the hash is stored
        db.execute(update(ApiToken).where(ApiToken.id == rows[1].id).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {expiring}"}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    ci_token = _ok(admin("issue-token", "ann@example.edu", "--label", "ci")).strip()
    assert "revoked 1 API token(s)" in _ok(admin("revoke-tokens", "ann@example.edu", "--label", "ci"))
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {ci_token}"}).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoked = _ok(admin("revoke-tokens", "ann@example.edu"))
    assert "revoked 2 API token(s)" in revoked  # the laptop's and the expired one
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_revoking_ends_dashboard_sessions_on_the_next_request(admin, client):
    _ok(admin("create-user", "prof@example.edu", "--name", "Prof", "--role", "instructor", "--password-stdin",
              stdin=PASSWORD))
    _dashboard_login(client, "prof@example.edu", PASSWORD)
    assert client.get("/dashboard").status_code == 200
    _ok(admin("revoke-tokens", "prof@example.edu"))
    response = client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    _dashboard_login(client, "prof@example.edu", PASSWORD)  # a new login works again
    assert client.get("/dashboard").status_code == 200


def test_admin_role_can_log_in(admin, client):
    _ok(admin("create-user", "root@example.edu", "--name", "Site admin", "--role", "admin", "--password-stdin",
              stdin=PASSWORD))
    response = client.post("/api/v1/auth/token", json={"email": "root@example.edu", "password": PASSWORD})
    assert response.status_code == 201 and response.json()["user"]["role"] == "admin"


def test_a_new_password_ends_sessions_and_replaces_the_old_one(admin, client):
    _ok(admin("create-user", "prof@example.edu", "--name", "Prof", "--role", "instructor", "--password-stdin",
              stdin=PASSWORD))
    _dashboard_login(client, "prof@example.edu", PASSWORD)
    assert admin("set-password", "prof@example.edu", stdin="short").returncode == 1
    _ok(admin("set-password", "prof@example.edu", stdin="another long pass phrase\n"))
    assert client.get("/dashboard").status_code == 303
    assert client.post("/api/v1/auth/token", json={"email": "prof@example.edu", "password": PASSWORD}).status_code == 401
    _dashboard_login(client, "prof@example.edu", "another long pass phrase")
