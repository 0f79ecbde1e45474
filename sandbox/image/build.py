"""Builds the sandbox image, with a registry (python:3.11-slim) or without one (debootstrap + docker import).

Two layers, each tagged by a content hash so that a second run finds it and builds nothing:

    cnn-grader-sandbox-base:<recipe hash>   offline only: Debian bookworm minbase + python3 + NumPy, imported
                                            from a root filesystem built by debootstrap (cached in var/sandbox)
    cnn-grader-sandbox:<content hash>       the job image: base + /opt/kit/tinytorch + /opt/harness/*.py,
                                            unprivileged user; the hash covers the Dockerfile, the kit and the
                                            harnesses, which change during development, so a stale image is
                                            never used and rebuilding it (COPY of a few files) takes seconds

The kit and the harnesses are baked in, not bind-mounted, so that the image digest reported with every outcome
names exactly the code that graded it. Nothing else of the project enters the build context.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sandbox.runner import HARNESS_DIR, KIT_DIR, InfrastructureError

IMAGE_DIR = Path(__file__).resolve().parent
DOCKERFILE = IMAGE_DIR / "Dockerfile"
IMAGE_REPOSITORY = "cnn-grader-sandbox"
BASE_REPOSITORY = "cnn-grader-sandbox-base"
CONNECTED_BASE_IMAGE = "python:3.11-slim"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_PACKAGES = ("python3",)
# Used only when the NumPy wheel cannot be had: Debian's NumPy 1.24 with OpenBLAS instead of the slow reference BLAS.
DEBIAN_NUMPY_PACKAGES = ("python3-numpy", "libopenblas0-pthread")
NUMPY_VERSION = "2.2.6"  # same as the host venv; the manylinux wheel bundles OpenBLAS
RECIPE_VERSION = "2"  # bump when the offline recipe below changes
RECIPE_MARKER = ".sandbox-recipe"  # in the root of the rootfs: which recipe built it
ROOTFS_STRIP = ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                "usr/share/locale", "usr/share/info")

Log = Callable[[str], None]


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ImageRef:
    """A built sandbox image: the tag it was found under and its immutable id (sha256:...)."""

    tag: str
    image_id: str


def _hash_files(digest: "hashlib._Hash", root: Path, pattern: str) -> None:
    for path in sorted(p for p in root.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")


def kit_package_dir() -> Path:
    return KIT_DIR / "tinytorch"


def content_hash(base_image: str, *, harness_dir: Path = HARNESS_DIR, kit_dir: Path | None = None) -> str:
    """Hash of everything that goes into the job image: base, Dockerfile, kit, harnesses."""
    digest = hashlib.sha256()
    digest.update(base_image.encode() + b"\0" + NUMPY_VERSION.encode() + b"\0" + DOCKERFILE.read_bytes())
    kit = kit_dir or kit_package_dir()
    if kit.is_dir():
        _hash_files(digest, kit, "*.py")
    digest.update(b"--harness--")
    if harness_dir.is_dir():
        _hash_files(digest, harness_dir, "*.py")
    return digest.hexdigest()[:16]


def recipe_hash() -> str:
    text = "|".join([RECIPE_VERSION, DEBIAN_SUITE, *DEBIAN_PACKAGES, *DEBIAN_NUMPY_PACKAGES, NUMPY_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_image_tag() -> str:
    return f"{BASE_REPOSITORY}:{recipe_hash()}"


def image_tag(*, offline: bool) -> str:
    base = base_image_tag() if offline else CONNECTED_BASE_IMAGE
    return f"{IMAGE_REPOSITORY}:{content_hash(base)}"


def find_current_image(client) -> ImageRef | None:
    """The job image built from the current kit and harnesses (either variant), or None."""
    import docker.errors

    for offline in (True, False):
        tag = image_tag(offline=offline)
        try:
            return ImageRef(tag, client.images.get(tag).id)
        except docker.errors.ImageNotFound:
            continue
    return None


def _numpy_wheel(wheel_dir: Path, log: Log) -> Path | None:
    """The cached NumPy wheel for CPython 3.11 manylinux, downloaded from PyPI once; None when unavailable."""
    pattern = f"numpy-{NUMPY_VERSION}-cp311-cp311-manylinux*x86_64.whl"
    found = sorted(wheel_dir.glob(pattern))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    log(f"downloading numpy=={NUMPY_VERSION} (manylinux, cp311) into {wheel_dir}")
    command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
               "--platform", "manylinux_2_17_x86_64", "--python-version", "3.11", "--implementation", "cp",
               "--abi", "cp311", "-d", str(wheel_dir), f"numpy=={NUMPY_VERSION}"]
    if subprocess.run(command, check=False).returncode != 0:
        log("the NumPy wheel is not reachable; falling back to Debian's python3-numpy with OpenBLAS")
        return None
    found = sorted(wheel_dir.glob(pattern))
    return found[0] if found else None


def build_rootfs(cache_dir: Path, log: Log = _print) -> Path:
    """The offline root filesystem (Debian minbase + python3 + NumPy), reused when its recipe is unchanged."""
    rootfs = cache_dir / "rootfs"
    marker = rootfs / RECIPE_MARKER
    if marker.is_file() and marker.read_text().strip() == recipe_hash():
        log(f"reusing the root filesystem in {rootfs}")
        return rootfs
    if shutil.which("debootstrap") is None:
        raise InfrastructureError("debootstrap is not installed (apt-get install -y debootstrap); "
                                  "it is needed to build the sandbox image without a registry")
    wheel = _numpy_wheel(cache_dir / "wheels", log)
    packages = list(DEBIAN_PACKAGES) + ([] if wheel else list(DEBIAN_NUMPY_PACKAGES))
    partial = cache_dir / "rootfs.partial"
    if partial.exists() and not (partial / "usr" / "bin" / "python3").exists():
        shutil.rmtree(partial)
    if not partial.exists():
        log(f"debootstrap {DEBIAN_SUITE} minbase with {', '.join(packages)} into {partial} (about a minute)")
        command = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", DEBIAN_SUITE,
                   str(partial), DEBIAN_MIRROR]
        if subprocess.run(command, check=False, stdout=subprocess.DEVNULL).returncode != 0:
            shutil.rmtree(partial, ignore_errors=True)
            raise InfrastructureError(f"debootstrap of {DEBIAN_SUITE} from {DEBIAN_MIRROR} failed")
    if wheel:
        target = partial / "usr" / "local" / "lib" / "python3.11" / "dist-packages"
        if not (target / "numpy").is_dir():
            log(f"installing {wheel.name} into the root filesystem")
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                            "--no-compile", "--target", str(target), str(wheel)], check=True)
    for relative in ROOTFS_STRIP:
        shutil.rmtree(partial / relative, ignore_errors=True)
    # Set-uid programs are useless to a job (no-new-privileges) and only widen the attack surface.
    subprocess.run(["find", str(partial), "-xdev", "-type", "f", "-perm", "/6000", "-exec", "chmod", "ug-s", "{}",
                    "+"], check=True)
    for directory in ("opt/kit", "opt/harness", "job/submission", "job/inputs", "job/data", "job/out"):
        (partial / directory).mkdir(parents=True, exist_ok=True)
    (partial / RECIPE_MARKER).write_text(recipe_hash() + "\n")
    if rootfs.exists():
        shutil.rmtree(rootfs)
    partial.rename(rootfs)
    return rootfs


def ensure_base_image(client, cache_dir: Path, log: Log = _print) -> str:
    """Imports the offline root filesystem as the base image unless that tag already exists."""
    import docker.errors

    tag = base_image_tag()
    try:
        client.images.get(tag)
        log(f"base image {tag} present")
        return tag
    except docker.errors.ImageNotFound:
        pass
    rootfs = build_rootfs(cache_dir, log)
    log(f"importing {rootfs} as {tag}")
    repository, _, version = tag.partition(":")
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", "-", "."], stdout=subprocess.PIPE)
    try:
        client.api.import_image(src=tar.stdout, repository=repository, tag=version, stream_src=True,
                                changes=["ENV PATH=/usr/local/bin:/usr/bin:/bin", "CMD [\"python3\"]"])
    finally:
        tar.stdout.close()
        tar.wait()
    client.images.get(tag)
    return tag


def _context_tar(harness_dir: Path, kit_dir: Path) -> io.BytesIO:
    """Build context with the Dockerfile, kit/tinytorch and harness/*.py only."""
    buffer = io.BytesIO()

    def add_tree(archive: tarfile.TarFile, source: Path, arcname: str, pattern: str) -> None:
        info = tarfile.TarInfo(arcname)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(info)
        for path in sorted(source.rglob(pattern) if source.is_dir() else []):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            data = path.read_bytes()
            member = tarfile.TarInfo(f"{arcname}/{path.relative_to(source)}")
            member.size, member.mode = len(data), 0o644
            archive.addfile(member, io.BytesIO(data))

    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(str(DOCKERFILE), arcname="Dockerfile")
        add_tree(archive, kit_dir, "kit/tinytorch", "*.py")
        add_tree(archive, harness_dir, "harness", "*.py")
    # Directories inside kit/tinytorch must exist in the archive for COPY to keep the package layout.
    buffer.seek(0)
    return buffer


def ensure_image(client, *, offline: bool | None = None, cache_dir: Path, log: Log = _print,
                 force: bool = False) -> ImageRef:
    """The job image for the current kit and harnesses, built when missing (or always with `force`).

    `offline=None` picks: a present image of either variant; else the connected build when the
    python:3.11-slim base is present locally; else the offline build.
    """
    import docker.errors

    if not force and offline is None:
        current = find_current_image(client)
        if current:
            log(f"sandbox image {current.tag} present ({current.image_id[:19]})")
            _tag_latest(client, current)
            return current
    if offline is None:
        try:
            client.images.get(CONNECTED_BASE_IMAGE)
            offline = False
        except docker.errors.ImageNotFound:
            offline = True
    tag = image_tag(offline=offline)
    if not force:
        try:
            ref = ImageRef(tag, client.images.get(tag).id)
            log(f"sandbox image {tag} present ({ref.image_id[:19]})")
            _tag_latest(client, ref)
            return ref
        except docker.errors.ImageNotFound:
            pass
    base = ensure_base_image(client, cache_dir, log) if offline else CONNECTED_BASE_IMAGE
    ref = _build_job_image(client, tag, base, kit_package_dir(), offline=offline, log=log)
    _tag_latest(client, ref)
    return ref


def ensure_kit_image(client, kit_package: Path, *, cache_dir: Path, log: Log = _print) -> ImageRef:
    """The job image of an uploaded course kit (`kit_package` is its tinytorch/ directory), built when missing.

    Same base, Dockerfile and harnesses as the default image; only /opt/kit differs. Built offline on the base
    image when that is present (the connected base otherwise), and tagged `kit-<content hash>`, never `latest`.
    """
    import docker.errors

    base, offline = None, True
    for candidate in (base_image_tag(), CONNECTED_BASE_IMAGE):
        try:
            client.images.get(candidate)
            base, offline = candidate, candidate != CONNECTED_BASE_IMAGE
            break
        except docker.errors.ImageNotFound:
            continue
    if base is None:
        base = ensure_base_image(client, cache_dir, log)
    tag = f"{IMAGE_REPOSITORY}:kit-{content_hash(base, kit_dir=kit_package)}"
    try:
        return ImageRef(tag, client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return _build_job_image(client, tag, base, kit_package, offline=offline, log=log)


def _build_job_image(client, tag: str, base: str, kit_package: Path, *, offline: bool, log: Log) -> ImageRef:
    import docker.errors

    log(f"building {tag} from {base} with the kit and {len(list(HARNESS_DIR.glob('*.py')))} harness file(s)")
    context = _context_tar(HARNESS_DIR, kit_package)
    try:
        image, _ = client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True,
                                       pull=False, buildargs={"BASE_IMAGE": base, "NUMPY_VERSION": NUMPY_VERSION},
                                       network_mode="none" if offline else None,
                                       labels={"cnn-grader.sandbox-image": "1"})
    except docker.errors.BuildError as error:
        lines = "".join(str(chunk.get("stream", chunk.get("error", ""))) for chunk in error.build_log)
        raise InfrastructureError(f"building the sandbox image failed: {error}\n{lines[-2000:]}") from error
    ref = ImageRef(tag, image.id)
    log(f"built {tag} ({ref.image_id[:19]})")
    return ref


def _tag_latest(client, ref: ImageRef) -> None:
    client.images.get(ref.image_id).tag(IMAGE_REPOSITORY, "latest")





def remove_stale_images(client, *, min_age_seconds: float = 24 * 3600) -> list[str]:
    """Removes sandbox and base image tags other than the current ones (and `latest`) older than `min_age_seconds`.

    Running workers pin their image by id, so recent images are kept: one a worker still uses would otherwise
    turn every later job of that worker into an infrastructure fault. Returns the removed tags.
    """
    import datetime

    import docker.errors

    now = datetime.datetime.now(datetime.timezone.utc)

    keep = {image_tag(offline=True), image_tag(offline=False), base_image_tag(), f"{IMAGE_REPOSITORY}:latest"}
    removed = []
    for repository in (IMAGE_REPOSITORY, BASE_REPOSITORY):
        for image in client.images.list(name=repository):
            created = datetime.datetime.fromisoformat(image.attrs["Created"][:26].rstrip("Z") + "+00:00")
            if (now - created).total_seconds() < min_age_seconds:
                continue
            for tag in image.tags:
                if tag in keep:
                    continue
                try:
                    client.images.remove(tag, noprune=False)
                    removed.append(tag)
                except docker.errors.APIError:
                    pass  # still used by a container
    return removed
