"""The host side of one job's files, shared by every backend: prepare, read back, destroy.

    <job_root>/<pid>-<uuid>/          0700, the worker's
        submission/spatial.py         0444 in a 0555 directory
        inputs/<file>                 0444 in a 0555 directory
        out/                          0555: the job cannot create, rename or delete anything here
        out/result.bin                writable by the job's uid; size checked after the run
        out/progress.jsonl            writable by the job's uid; tailed while the job runs

The job runs as uid/gid 65534. When the worker is root the two output files are chowned to it (mode 0600);
otherwise they are mode 0666 inside the worker's private 0700 directory.

A backend that mounts the inputs read-only into the job (Docker) may hand over `SharedInputs`: a large input is then
a hard link to one 0444 copy per content, kept for the worker process in `<job_root>/shared-inputs/<pid>-<uuid>/`
(0700), instead of megabytes written and deleted per job (issue 14: the correctness inputs are 2.3 MB, the same for
every job of a seed). Nothing of the host writes through a link: files are only ever created (O_EXCL), never opened
for writing once they exist, and removing a job directory unlinks its names only.
"""

from __future__ import annotations

import atexit
import collections
import os
import shutil
import stat
import threading
import uuid
from pathlib import Path

from sandbox.core import check_plain_name
from sandbox.runner import SandboxJob

JOB_UID = 65534
JOB_GID = 65534
RESULT_FILE = "result.bin"
PROGRESS_FILE = "progress.jsonl"
READ_AHEAD_BYTES = 64 * 1024  # read past a file's size, to its end should it have grown
SHARED_DIR = "shared-inputs"
SHARED_MIN_BYTES = 256 * 1024  # smaller inputs are written per job: a link saves little there
SHARED_MAX_FILES = 8  # contents kept per process (grader.stages.correctness caches 8 seeds' inputs)


class SharedInputs:
    """One read-only copy per content of a worker process's large job inputs, hard-linked into job directories.

    Only for backends whose job sees its inputs through a read-only mount and runs as another uid than the worker's
    (Docker): a job running as the worker's uid on the host's own paths could chmod the one inode every later job
    reads and rewrite it.
    """

    def __init__(self, job_root: Path) -> None:
        self.root = job_root / SHARED_DIR
        self.lock = threading.Lock()
        self.enabled = True
        self.directory: Path | None = None
        self.pid = 0
        self.files: collections.OrderedDict[bytes, Path] = collections.OrderedDict()  # content -> its copy

    def link(self, content: bytes, target: Path) -> bool:
        """Hard-links the copy of `content` at `target`, a name that must not exist yet; False: not shared (small,
        or the file system refused), the caller writes the file itself."""
        if len(content) < SHARED_MIN_BYTES or not self.enabled:
            return False
        with self.lock:
            try:
                os.link(self._copy_of(content), target)
            except FileExistsError:
                return False  # the caller's own write refuses the existing name too
            except FileNotFoundError:  # the copy was removed from outside: the next job writes a new one
                self.files.pop(content, None)
                return False
            except OSError:  # no hard links here (or no room for the copy): every job writes its own from now on
                self.enabled = False
                return False
        return True

    def _copy_of(self, content: bytes) -> Path:
        """The path of `content`'s copy, written now if this process has none (a dict lookup: a bytes object keeps
        its hash, and the same object compares equal at once)."""
        if self.pid != os.getpid():  # a forked child starts its own directory: the parent's may go with the parent
            self.pid, self.directory, self.files = os.getpid(), None, collections.OrderedDict()
        path = self.files.get(content)
        if path is not None:
            self.files.move_to_end(content)
            return path
        if self.directory is None:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory = self.root / f"{os.getpid()}-{uuid.uuid4().hex}"
            directory.mkdir(mode=0o700)
            self.directory = directory
            atexit.register(self.remove)
        path = self.directory / uuid.uuid4().hex
        try:
            _create_read_only(path, content)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.files[content] = path
        if len(self.files) > SHARED_MAX_FILES:
            _, oldest = self.files.popitem(last=False)
            oldest.unlink(missing_ok=True)  # job directories that link it keep their name of it
        return path

    def remove(self) -> None:
        """Removes this process's copies (at exit; a process killed first leaves them to `remove_orphan_job_dirs`).
        Job directories that still link them keep their own names of the files."""
        with self.lock:
            if self.directory is not None and self.pid == os.getpid():
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory, self.files = None, collections.OrderedDict()


def _create_read_only(path: Path, content: bytes) -> None:
    """Writes a new 0444 file; refuses a name that exists (never writes through an existing file or link)."""
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
    with open(handle, "wb") as stream:
        stream.write(content)
    os.chmod(path, 0o444, follow_symlinks=False)  # whatever the umask took off


class JobDirectory:
    """One job's host directory; use as a context manager so it is always removed."""

    def __init__(self, job_root: Path, job: SandboxJob | None, shared: SharedInputs | None = None) -> None:
        """Creates the directory; with `job` None its submission and inputs come later (`write_job`), as for a
        pre-started container waiting for its one job. With `shared`, large inputs are links to its copies."""
        job_root.mkdir(parents=True, exist_ok=True)
        self.shared = shared
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
        self._write_read_only(self.submission_dir, {"spatial.py": job.submission}, None)
        self._write_read_only(self.inputs_dir, job.inputs, self.shared)

    @staticmethod
    def _write_read_only(directory: Path, files: dict[str, bytes], shared: SharedInputs | None) -> None:
        for name, content in files.items():
            check_plain_name(name)
            target = directory / name
            if shared is None or not shared.link(content, target):
                _create_read_only(target, content)
        directory.chmod(0o555)

    def output_sizes(self) -> tuple[int, int]:
        """Sizes of result.bin and progress.jsonl (lstat: the job cannot replace them, but never follow links)."""
        return tuple(os.lstat(self.out_dir / name).st_size for name in (RESULT_FILE, PROGRESS_FILE))

    def read_result(self, cap_bytes: int) -> bytes:
        """The first `cap_bytes` of result.bin, in reads the size of the file: one read of the whole cap (32 MiB)
        allocated the cap before shrinking it to the file, 1.7 ms a job for a 2.3 MB file instead of 0.15 ms."""
        path = self.out_dir / RESULT_FILE
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return b""
        with open(path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            chunks, left = [], cap_bytes
            while left > 0:  # until the end of the file, as it is when read (it is not expected to change)
                chunk = handle.read(min(left, max(size - (cap_bytes - left), 0) + READ_AHEAD_BYTES))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)

    def remove(self) -> None:
        _remove_tree(self.path)

    def __enter__(self) -> "JobDirectory":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()


def remove_orphan_job_dirs(job_root: Path) -> int:
    """Removes job directories (and shared inputs) whose worker process is gone; returns how many."""
    removed = 0
    if not job_root.is_dir():
        return 0
    shared = job_root / SHARED_DIR
    for entry in [*job_root.iterdir(), *(shared.iterdir() if shared.is_dir() else ())]:
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
