"""Picks the isolation backend: docker when the engine answers and the image exists, else bwrap, else refuse.

The one place that decides which backend runs student code (`select_runner`) and whether one could run now
(`probe`, for health checks). Both take the grader's settings object and never import the grader: they read
`sandbox_backend`, `sandbox_image`, `sandbox_dir`, `sandbox_engine_timeout_seconds`,
`sandbox_container_log_bytes` and `sandbox_orphan_age_seconds`. The unsafe subprocess backend is used only when
named ("unsafe-subprocess"), never as a fallback. With `kit_dir` (a directory holding an uploaded course's
tinytorch/), the runner's jobs see that kit instead of the built-in one (a per-kit image for docker).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.runner import InfrastructureError, SandboxRunner

BACKENDS = ("auto", "docker", "bwrap", "unsafe-subprocess")

AUTO_IMAGE_SUFFIX = ":auto"  # sandbox_image "cnn-grader-sandbox:auto" = the image of the current kit and harnesses


class NoSandboxError(InfrastructureError):
    """No backend that isolates student code is usable here; the message says why for each."""


def sandbox_cache_dir(settings) -> Path:
    """Root filesystem, wheels and job directories. Its own setting, not under data_dir: job directories must be
    reachable by the sandbox's uid (bwrap) and visible to the engine at the same path (docker)."""
    return Path(settings.sandbox_dir)


def job_root(settings) -> Path:
    return sandbox_cache_dir(settings) / "jobs"


def resolve_image(settings, client, *, build_missing: bool = True) -> str:
    """The image reference to run: a fixed name as configured, or for ":auto" the current content-hash tag.

    With ":auto" a missing job image is built when its base is present (a thin COPY layer, seconds); a missing
    base is never built here (that takes a minute and a mirror): run `grader sandbox ensure-image`.
    """
    from sandbox.image import build

    image = settings.sandbox_image
    if not image.endswith(AUTO_IMAGE_SUFFIX):
        return image
    current = build.find_current_image(client)
    if current:
        return current.image_id
    if not build_missing:
        raise InfrastructureError("the sandbox image for the current kit and harnesses is missing; "
                                  "run `grader sandbox ensure-image`")
    import docker.errors

    bases = [build.base_image_tag(), build.CONNECTED_BASE_IMAGE]
    for base in bases:
        try:
            client.images.get(base)
        except docker.errors.ImageNotFound:
            continue
        offline = base != build.CONNECTED_BASE_IMAGE
        return build.ensure_image(client, offline=offline, cache_dir=sandbox_cache_dir(settings)).image_id
    raise InfrastructureError("no sandbox base image is present; run `grader sandbox ensure-image`")


def docker_runner(settings, *, build_missing: bool = True, kit_dir: Path | None = None):
    from sandbox.docker_backend import DockerRunner, connect

    client = connect(settings.sandbox_engine_timeout_seconds)
    if kit_dir is None:
        image = resolve_image(settings, client, build_missing=build_missing)
    else:
        from sandbox.image import build

        kit_image = build.ensure_kit_image(client, Path(kit_dir) / "tinytorch", cache_dir=sandbox_cache_dir(settings))
        image = kit_image.image_id
    return DockerRunner(image, job_root=job_root(settings), client=client,
                        container_log_bytes=settings.sandbox_container_log_bytes,
                        orphan_age_seconds=settings.sandbox_orphan_age_seconds)


def bwrap_runner(settings, kit_dir: Path | None = None):
    from sandbox.bwrap_backend import BwrapRunner

    rootfs = sandbox_cache_dir(settings) / "rootfs"
    if kit_dir is not None:
        return BwrapRunner(rootfs=rootfs, job_root=job_root(settings), kit_dir=kit_dir)
    return BwrapRunner(rootfs=rootfs, job_root=job_root(settings))


def select_runner(settings, backend: str | None = None, *, kit_dir: Path | None = None) -> SandboxRunner:
    """The runner for `backend` ("auto", "docker", "bwrap" or "unsafe-subprocess"; default the setting)."""
    backend = backend or settings.sandbox_backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox_backend {backend!r}; expected {', '.join(BACKENDS)}")
    if backend == "unsafe-subprocess":
        from sandbox.subprocess_backend import SubprocessRunner

        return SubprocessRunner() if kit_dir is None else SubprocessRunner(kit_dir=Path(kit_dir))
    return _first_usable(settings, backend, build_missing=True, kit_dir=kit_dir)


@dataclass(frozen=True)
class SandboxProbe:
    """Whether student code could run now. Fields: ok; backend (the one that would run it, or ""); detail."""

    ok: bool
    backend: str
    detail: str


def probe(settings, backend: str | None = None) -> SandboxProbe:
    """A cheap check for readiness probes: the backend `select_runner` would pick, without building anything."""
    backend = backend or settings.sandbox_backend
    if backend == "unsafe-subprocess":
        return SandboxProbe(True, backend, "unsafe-subprocess (no isolation: tests only)")
    try:
        runner = _first_usable(settings, backend, build_missing=False)
    except (InfrastructureError, ValueError) as error:
        return SandboxProbe(False, "", str(error))
    return SandboxProbe(True, runner.name, f"docker ({runner.image_id})" if runner.name == "docker" else runner.name)


def _first_usable(settings, backend: str, *, build_missing: bool, kit_dir: Path | None = None) -> SandboxRunner:
    factories = {"docker": lambda: docker_runner(settings, build_missing=build_missing, kit_dir=kit_dir),
                 "bwrap": lambda: bwrap_runner(settings, kit_dir)}
    if backend != "auto":
        if backend not in factories:
            raise ValueError(f"unknown sandbox_backend {backend!r}; expected {', '.join(BACKENDS)}")
        return factories[backend]()
    reasons = []
    for name, factory in factories.items():
        try:
            return factory()
        except InfrastructureError as error:
            reasons.append(f"{name}: {error}")
    raise NoSandboxError("student code will not run: no isolating sandbox is usable on this host ("
                         + "; ".join(reasons) + "). Start the Docker engine (scripts/ensure_services.sh) and run "
                         "`grader sandbox ensure-image`, or install bubblewrap and build the root filesystem with "
                         "`grader sandbox build-image --offline`.")
