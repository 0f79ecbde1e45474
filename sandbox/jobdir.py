"""The host side of one job's files, shared by every backend: prepare, read back, destroy.

    <job_root>/<pid>-<uuid>/          0700, the worker's
        submission/spatial.py         0444 in a 0555 directory
        inputs/<file>                 0444 in a 0555 directory
        out/                          0555: the job cannot create, rename or delete anything here
        out/result.bin                writable by the job's uid; size checked after the run
        out/progress.jsonl            writable by the job's uid; tailed while the job runs

The job runs as uid/gid 65534. When the worker is root the two output files are chowned to it (mode 0600);
otherwise they are mode 0666 inside the worker's private 0700 directory.
"""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path

from sandbox.core import check_plain_name
from sandbox.runner import SandboxJob

JOB_UID = 65534
JOB_GID = 65534
RESULT_FILE = "result.bin"
PROGRESS_FILE = "progress.jsonl"


class JobDirectory:
    """One job's host directory; use as a context manager so it is always removed."""

    def __init__(self, job_root: Path, job: SandboxJob | None) -> None:
        """Creates the directory; with `job` None its submission and inputs come later (`write_job`), as for a
        pre-started container waiting for its one job."""
        job_root.mkdir(parents=True, exist_ok=True)
        self.job_id = uuid.uuid4().hex
        self.path = job_root / f"{os.getpid()}-{self.job_id}"
        self.path.mkdir(mode=0o700)
        self.submission_dir = self.path / "submission"
        self.inputs_dir = self.path / "inputs"
        self.out_dir = self.path / "out"
        self.submission_dir.mkdir()
        self.inputs_dir.mkdir()
        self.out_dir.mkdir()
        for name in (RESULT_FILE, PROGRESS_FILE):
            target = self.out_dir / name
            target.touch()
            if os.geteuid() == 0:
                os.chown(target, JOB_UID, JOB_GID)
                target.chmod(0o600)
            else:
                target.chmod(0o666)
        self.out_dir.chmod(0o555)
        self.progress_path = self.out_dir / PROGRESS_FILE
        if job is not None:
            self.write_job(job)

    def write_job(self, job: SandboxJob) -> None:
        """The submission and inputs, read-only in read-only directories."""
        self._write_read_only(self.submission_dir, {"spatial.py": job.submission})
        self._write_read_only(self.inputs_dir, job.inputs)

    @staticmethod
    def _write_read_only(directory: Path, files: dict[str, bytes]) -> None:
        for name, content in files.items():
            check_plain_name(name)
            target = directory / name
            target.write_bytes(content)
            target.chmod(0o444)
        directory.chmod(0o555)

    def output_sizes(self) -> tuple[int, int]:
        """Sizes of result.bin and progress.jsonl (lstat: the job cannot replace them, but never follow links)."""
        return tuple(os.lstat(self.out_dir / name).st_size for name in (RESULT_FILE, PROGRESS_FILE))

    def read_result(self, cap_bytes: int) -> bytes:
        path = self.out_dir / RESULT_FILE
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return b""
        with open(path, "rb") as handle:
            return handle.read(cap_bytes)

    def remove(self) -> None:
        _remove_tree(self.path)

    def __enter__(self) -> "JobDirectory":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def remove_orphan_job_dirs(job_root: Path) -> int:
    """Removes job directories whose worker process is gone; returns how many."""
    removed = 0
    if not job_root.is_dir():
        return 0
    for entry in job_root.iterdir():
        pid_text, _, _ = entry.name.partition("-")
        if not pid_text.isdigit() or pid_alive(int(pid_text)):
            continue
        _remove_tree(entry)
        removed += 1
    return removed


def _remove_tree(path: Path) -> None:
    """Removes a job directory, first making its read-only folders writable again."""
    for directory in (path / "submission", path / "inputs", path / "out"):
        if directory.exists():
            directory.chmod(0o700)
    shutil.rmtree(path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
