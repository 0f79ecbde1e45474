"""Course kits an instructor uploads: the course's own `tinytorch` package at the version the course teaches.

An assignment names its kit in the spec (`[assignment] kit = "sha256:<64 hex>"`); without one it uses the
built-in kit (reference/kit). An upload is a wheel, a .zip or a .tar(.gz) holding a `tinytorch/` package
directory; only its Python files are kept. It is unpacked here as data (the trusted side never imports it),
checked, and stored content-addressed under `<sandbox_dir>/kits/<sha256>/tinytorch/`, where the sha256 is taken
over the kept files (sorted paths and contents), so the same package uploaded twice is stored once. Jobs of such
an assignment run in a sandbox whose /opt/kit is that directory (a per-kit image for Docker, built offline on
the base image like the default one; a read-only bind for bubblewrap).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

KIT_REFERENCE = re.compile(r"^sha256:([0-9a-f]{64})$")
MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # 20 MiB archive
MAX_PACKAGE_BYTES = 20 * 1024 * 1024  # 20 MiB of Python files once unpacked
MAX_FILES = 2000
PACKAGE = "tinytorch"


class KitError(ValueError):
    """The upload is not a usable course kit; the message says why."""


@dataclass(frozen=True)
class StoredKit:
    """A stored kit: `reference` ("sha256:...") goes in the spec; `root` holds tinytorch/ (the sandbox's /opt/kit)."""

    reference: str
    root: Path
    files: int


def kits_dir(settings) -> Path:
    return Path(settings.sandbox_dir) / "kits"


def _members(data: bytes) -> list[tuple[str, bytes]]:
    """(path, content) of every regular file in a zip/wheel or tar archive; refuses links and device files."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise KitError(f"the kit archive is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES}")
    files: list[tuple[str, bytes]] = []
    total = 0
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if (info.external_attr >> 16) & 0o170000 not in (0, 0o100000):
                    raise KitError(f"{info.filename}: only regular files are accepted in a kit")
                total += info.file_size
                if total > MAX_PACKAGE_BYTES or len(files) >= MAX_FILES:
                    raise KitError("the kit is too large once unpacked")
                files.append((info.filename, archive.read(info)))
        return files
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise KitError("the kit must be a wheel, a .zip or a .tar(.gz) archive of the tinytorch package") from error
    with archive:
        for member in archive:
            if member.isdir():
                continue
            if not member.isfile():
                raise KitError(f"{member.name}: only regular files are accepted in a kit (no links or devices)")
            total += member.size
            if total > MAX_PACKAGE_BYTES or len(files) >= MAX_FILES:
                raise KitError("the kit is too large once unpacked")
            handle = archive.extractfile(member)
            files.append((member.name, handle.read() if handle else b""))
    return files


def _package_files(files: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """The Python files of the archive's `tinytorch/` package, keyed by their path below it ("core/tensor.py")."""
    roots = set()
    for name, _ in files:
        parts = PurePosixPath(name).parts
        if PACKAGE in parts and parts[-1] == "__init__.py" and parts[parts.index(PACKAGE) + 1:] == ("__init__.py",):
            roots.add(parts[:parts.index(PACKAGE) + 1])
    if len(roots) != 1:
        raise KitError("the archive must contain exactly one tinytorch package (a tinytorch/__init__.py); "
                       f"found {len(roots)}")
    root = roots.pop()
    package: dict[str, bytes] = {}
    for name, content in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise KitError(f"{name}: paths in a kit must stay inside it")
        if path.parts[:len(root)] != root or path.suffix != ".py" or "__pycache__" in path.parts:
            continue
        relative = "/".join(path.parts[len(root):])
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise KitError(f"{name} is not UTF-8 text") from None
        package[relative] = content
    return package


def kit_hash(package: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for relative in sorted(package):
        digest.update(relative.encode() + b"\0" + package[relative] + b"\0")
    return digest.hexdigest()


def store_kit(data: bytes, settings) -> StoredKit:
    """Check and store an uploaded kit (idempotent); raises KitError with a message for the instructor."""
    package = _package_files(_members(data))
    if "core/tensor.py" not in package:
        raise KitError("the tinytorch package has no core/tensor.py (tinytorch.core.tensor.Tensor is what "
                       "students' files import)")
    digest = kit_hash(package)
    final = kits_dir(settings) / digest
    if (final / PACKAGE / "__init__.py").is_file():
        return StoredKit(f"sha256:{digest}", final, len(package))
    kits_dir(settings).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=kits_dir(settings)))
    try:
        for relative, content in package.items():
            target = staging / PACKAGE / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        for directory, _, names in os.walk(staging):
            os.chmod(directory, 0o755)
            for name in names:
                os.chmod(os.path.join(directory, name), 0o644)
        try:
            staging.rename(final)
        except OSError:
            if not (final / PACKAGE / "__init__.py").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return StoredKit(f"sha256:{digest}", final, len(package))


def kit_root(reference: str, settings) -> Path:
    """The stored kit's directory (holding tinytorch/) for a spec's `kit` reference."""
    match = KIT_REFERENCE.match(reference or "")
    if match is None:
        raise KitError(f"a kit reference looks like sha256:<64 hex digits>, got {reference!r}")
    root = kits_dir(settings) / match.group(1)
    if not (root / PACKAGE / "__init__.py").is_file():
        raise KitError(f"the kit {reference} is not stored on this server; upload it again")
    return root


def runner_for(spec, settings, backend: str | None = None):
    """The sandbox runner for an assignment: its uploaded kit when the spec names one, else the built-in kit."""
    from sandbox.select import select_runner

    if not spec.kit:
        return select_runner(settings, backend)
    return select_runner(settings, backend, kit_dir=kit_root(spec.kit, settings))
