"""Backend selection: docker when it works, else bwrap, else a refusal that says why; unsafe only by name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from grader.settings import get_settings
from sandbox.select import NoSandboxError, select_runner


@dataclass
class FakeSettings:
    sandbox_backend: str
    sandbox_image: str
    sandbox_dir: Path


@pytest.mark.docker
def test_auto_picks_docker_when_the_engine_answers():
    settings = get_settings()
    runner = select_runner(FakeSettings("auto", settings.sandbox_image, settings.sandbox_dir))
    assert runner.name == "docker"


def test_auto_falls_back_to_bwrap_without_docker(monkeypatch):
    settings = get_settings()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    runner = select_runner(FakeSettings("auto", settings.sandbox_image, settings.sandbox_dir))
    assert runner.name == "bwrap"


def test_auto_refuses_when_nothing_isolates(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(NoSandboxError) as refusal:
        select_runner(FakeSettings("auto", "cnn-grader-sandbox:auto", tmp_path))
    message = str(refusal.value)
    assert "student code will not run" in message and "docker:" in message and "bwrap:" in message


def test_unsafe_backend_only_by_name():
    settings = get_settings()
    assert select_runner(FakeSettings("unsafe-subprocess", settings.sandbox_image, settings.sandbox_dir)).name \
        == "unsafe-subprocess"
    with pytest.raises(ValueError):
        select_runner(FakeSettings("unsafe", settings.sandbox_image, settings.sandbox_dir))
