"""The signing key when SECRET_KEY is unset: generated once, kept in the data directory (mode 0600), shared by
every process that uses the same data directory (the API and the workers of one host)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)
SECRET_KEY_FILE = "secret_key"
MIN_SECRET_KEY_BYTES = 32


def load_or_create_secret_key(data_dir: Path) -> str:
    """The key stored in `data_dir`, created (64 random URL-safe characters) when there is none yet."""
    path = Path(data_dir) / SECRET_KEY_FILE
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(48) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        # A link never replaces an existing file: when two processes start at once, the first key wins for both.
        os.link(partial, path)
        log.warning("SECRET_KEY is not set: generated a signing key in %s", path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()


def _read(path: Path) -> str:
    if path.stat().st_mode & 0o077:
        log.warning("%s was readable by other users; made it 0600", path)
        os.chmod(path, 0o600)
    key = path.read_text().strip()
    if len(key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ValueError(f"{path} holds no usable signing key (fewer than {MIN_SECRET_KEY_BYTES} bytes); delete it "
                         "to have a new one generated, or set SECRET_KEY")
    return key
