"""docker-compose.yml and the service Dockerfile. The compose tool is not installed here (checked below), so the
file's structure is checked as YAML; where `docker compose` exists it must also accept the file."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from grader.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def _compose_available() -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "compose", "version"], capture_output=True).returncode == 0


def test_compose_structure():
    data = yaml.safe_load(COMPOSE.read_text())
    services = data["services"]
    assert set(services) == {"postgres", "redis", "api", "worker"}
    for name, service in services.items():
        assert "healthcheck" in service and service["healthcheck"]["test"], name
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["worker"]["volumes"]
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert {"postgres-data", "redis-data", "grader-data"} <= set(data["volumes"])
    env = services["api"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and env["BROKER_URL"].startswith("redis://")
    assert "alembic upgrade head" in (PROJECT_ROOT / "Dockerfile").read_text()
    assert services["worker"]["command"][:3] == ["python", "-m", "grader.worker"]


@pytest.mark.skipif(not _compose_available(), reason="the docker compose plugin is not installed on this host")
def test_compose_config_accepts_the_file():
    result = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True,
                            text=True, env={"SECRET_KEY": "x" * 32, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
