"""Backend selection and the readiness probe: docker when it works, else bwrap, else a refusal that says why;
unsafe only by name. The engine is made unreachable the honest way: DOCKER_HOST names a socket that does not exist."""

from __future__ import annotations

import pytest

from grader.settings import get_settings
from sandbox.select import NoSandboxError, probe, select_runner

NO_ENGINE = "unix:///nonexistent/docker.sock"


def settings_with(**changes):
    return get_settings().model_copy(update=changes)


@pytest.mark.docker
def test_auto_picks_docker_when_the_engine_answers():
    assert select_runner(settings_with(sandbox_backend="auto")).name == "docker"
    ready = probe(settings_with(sandbox_backend="auto"))
    assert ready.ok and ready.backend == "docker" and ready.detail.startswith("docker (sha256:")


def test_auto_falls_back_to_bwrap_without_docker(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    assert select_runner(settings_with(sandbox_backend="auto")).name == "bwrap"
    assert probe(settings_with(sandbox_backend="auto")).backend == "bwrap"


def test_auto_refuses_when_nothing_isolates(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    settings = settings_with(sandbox_backend="auto", sandbox_dir=tmp_path)
    with pytest.raises(NoSandboxError) as refusal:
        select_runner(settings)
    message = str(refusal.value)
    assert "student code will not run" in message and "docker:" in message and "bwrap:" in message
    not_ready = probe(settings)
    assert not not_ready.ok and not_ready.backend == "" and "docker:" in not_ready.detail


def test_a_named_backend_overrides_the_setting(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    assert select_runner(settings_with(sandbox_backend="docker"), "bwrap").name == "bwrap"
    assert not probe(settings_with(sandbox_backend="bwrap"), "docker").ok


def test_unsafe_backend_only_by_name():
    assert select_runner(settings_with(sandbox_backend="unsafe-subprocess")).name == "unsafe-subprocess"
    assert select_runner(settings_with(sandbox_backend="auto"), "unsafe-subprocess").name == "unsafe-subprocess"
    with pytest.raises(ValueError):
        select_runner(settings_with(sandbox_backend="unsafe"))
    assert not probe(settings_with(sandbox_backend="unsafe")).ok


@pytest.mark.docker
def test_probe_never_builds_an_image():
    ready = probe(settings_with(sandbox_backend="docker", sandbox_image="cnn-grader-sandbox:no-such-tag"))
    assert not ready.ok and "missing" in ready.detail
