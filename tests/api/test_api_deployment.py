"""docker-compose.yml and the service Dockerfile: its structure as YAML, and the compose tool accepts it (`docker
compose config`, or Debian's docker-compose v1 where the v2 plugin is absent, as here). Nothing is started: no
image can be pulled on these machines."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from grader.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


def _compose_command() -> list[str]:
    """`docker compose` (v2 plugin) where present, else Debian's `docker-compose` (v1, installed by make setup)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no compose tool: scripts/install_system_packages.sh installs docker-compose")


def test_compose_structure():
    data = yaml.safe_load(COMPOSE.read_text())
    services = data["services"]
    assert set(services) == {"postgres", "redis", "api", "worker-correctness", "worker-training"}
    for name, service in services.items():
        assert "healthcheck" in service and service["healthcheck"]["test"], name
    workers = {name: services[name] for name in ("worker-correctness", "worker-training")}
    queues = {}
    for name, worker in workers.items():
        assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]
        assert worker["depends_on"]["api"]["condition"] == "service_healthy"
        assert worker["command"][:3] == ["python", "-m", "grader.worker"]
        queues[name] = worker["command"][worker["command"].index("--queues") + 1]
        env = worker["environment"]
        assert int(env["TRAINING_CPU_SHARES"]) < int(env["SANDBOX_CPU_SHARES"])
    # Separate services per queue: two training runs can never block every correctness job.
    assert queues == {"worker-correctness": "correctness", "worker-training": "training"}
    assert sum("--beat" in worker["command"] for worker in workers.values()) == 1
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"postgres-data", "redis-data", "grader-data"} <= set(data["volumes"])
    env = services["api"]["environment"]
    assert env["DATABASE_URL"].startswith("postgresql://") and env["BROKER_URL"].startswith("redis://")
    assert "alembic upgrade head" in (PROJECT_ROOT / "Dockerfile").read_text()


def test_compose_config_accepts_the_file():
    result = subprocess.run([*_compose_command(), "-f", str(COMPOSE), "config", "--quiet"], capture_output=True,
                            text=True, env={"SECRET_KEY": "x" * 32, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
