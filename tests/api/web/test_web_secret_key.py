"""No default signing key: an unset SECRET_KEY is generated once per data directory; short keys are refused."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from pydantic import ValidationError

from api.main import create_app
from api.web.security import COOKIE_NAME
from grader.settings import PROJECT_ROOT, Settings, get_settings
from tests.live_service import environment

OLD_DEVELOPMENT_KEY = "development-secret-change-me"  # the default every checkout used to share


def test_an_unset_key_is_generated_once_and_kept_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = Settings(data_dir=tmp_path).secret_key
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.encode()) >= 32 and first != OLD_DEVELOPMENT_KEY
    assert Settings(data_dir=tmp_path).secret_key == first
    other_process = subprocess.run(
        [sys.executable, "-c", "from grader.settings import get_settings; print(get_settings().secret_key)"],
        cwd=PROJECT_ROOT, env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path)}, capture_output=True,
        text=True, check=True)
    assert other_process.stdout.strip() == first
    assert Settings(data_dir=tmp_path / "elsewhere").secret_key != first


def test_an_unwritable_data_directory_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    blocked = tmp_path / "file-not-directory"
    blocked.write_text("")
    with pytest.raises(ValidationError, match="set SECRET_KEY or point DATA_DIR at a writable directory"):
        Settings(data_dir=blocked / "data")


@pytest.mark.parametrize("key", [OLD_DEVELOPMENT_KEY, "hunter2", "x" * 31])
def test_short_keys_are_refused_in_every_environment(key, tmp_path):
    for environment_name in ("development", "test", "production"):
        with pytest.raises(ValidationError, match="at least 32 bytes"):
            Settings(secret_key=key, environment=environment_name, data_dir=tmp_path)


def test_a_cookie_signed_with_the_old_development_key_opens_nothing(seed, tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY")
    with environment(DATA_DIR=str(tmp_path)):
        assert get_settings().secret_key != OLD_DEVELOPMENT_KEY
        forged = URLSafeTimedSerializer(OLD_DEVELOPMENT_KEY, salt="grader.dashboard.session").dumps(
            {"u": seed.instructor_id, "c": "forged", "v": 0})
        with TestClient(create_app(), follow_redirects=False) as client:
            client.cookies.set(COOKIE_NAME, forged)
            response = client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
