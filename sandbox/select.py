"""Picks the isolation backend: docker when the engine answers and the image exists, else bwrap, else refuse.

`select_runner` takes the grader's settings object (or anything with the same attribute names) and never imports
the grader: `sandbox_backend`, `sandbox_image`, `data_dir`. The unsafe subprocess backend is used only when
`sandbox_backend == "unsafe-subprocess"` is set explicitly.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.runner import InfrastructureError, SandboxRunner

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


def docker_runner(settings):
    from sandbox.docker_backend import DockerRunner, connect

    client = connect()
    return DockerRunner(resolve_image(settings, client), job_root=job_root(settings), client=client)


def bwrap_runner(settings):
    from sandbox.bwrap_backend import BwrapRunner

    return BwrapRunner(rootfs=sandbox_cache_dir(settings) / "rootfs", job_root=job_root(settings))


def select_runner(settings) -> SandboxRunner:
    """The runner for `settings.sandbox_backend`: "auto", "docker", "bwrap" or "unsafe-subprocess"."""
    backend = settings.sandbox_backend
    if backend == "docker":
        return docker_runner(settings)
    if backend == "bwrap":
        return bwrap_runner(settings)
    if backend == "unsafe-subprocess":
        from sandbox.subprocess_backend import SubprocessRunner

        return SubprocessRunner()
    if backend != "auto":
        raise ValueError(f"unknown sandbox_backend {backend!r}; expected auto, docker, bwrap or unsafe-subprocess")
    reasons = []
    for name, factory in (("docker", docker_runner), ("bwrap", bwrap_runner)):
        try:
            return factory(settings)
        except InfrastructureError as error:
            reasons.append(f"{name}: {error}")
    raise NoSandboxError("student code will not run: no isolating sandbox is usable on this host ("
                         + "; ".join(reasons) + "). Start the Docker engine (scripts/ensure_services.sh) and run "
                         "`grader sandbox ensure-image`, or install bubblewrap and build the root filesystem with "
                         "`grader sandbox build-image --offline`.")
