"""Job directories with shared inputs (sandbox/jobdir.py): a large input is a link to one read-only copy per content,
which nothing on the host writes through and which goes with its worker process."""

from __future__ import annotations

import os
import stat

import pytest

from sandbox.jobdir import SHARED_DIR, SHARED_MAX_FILES, SHARED_MIN_BYTES, JobDirectory, SharedInputs, \
    remove_orphan_job_dirs
from sandbox.runner import SandboxJob

BIG = bytes(range(256)) * (SHARED_MIN_BYTES // 256 + 1)


def job(big: bytes = BIG) -> SandboxJob:
    return SandboxJob("correctness", b"print('hi')\n", inputs={"arrays.npz": big, "cases.json": b"{}"})


def test_large_inputs_are_links_to_one_read_only_copy(tmp_path):
    shared = SharedInputs(tmp_path)
    with JobDirectory(tmp_path, job(), shared) as first, JobDirectory(tmp_path, job(bytes(BIG)), shared) as second:
        one, two = (os.stat(directory.inputs_dir / "arrays.npz") for directory in (first, second))
        assert (one.st_ino, one.st_dev) == (two.st_ino, two.st_dev) and one.st_nlink == 3  # the copy and two jobs
        assert stat.S_IMODE(one.st_mode) == 0o444
        assert (first.inputs_dir / "arrays.npz").read_bytes() == BIG
        small = os.stat(first.inputs_dir / "cases.json")
        assert small.st_nlink == 1 and stat.S_IMODE(small.st_mode) == 0o444  # small inputs: written per job
        assert os.stat(first.submission_dir / "spatial.py").st_nlink == 1
    copies = list((tmp_path / SHARED_DIR).rglob("*"))
    assert [path.read_bytes() for path in copies if path.is_file()] == [BIG]  # removing the jobs left it whole
    assert os.stat(next(path for path in copies if path.is_file())).st_nlink == 1


def test_without_shared_inputs_every_file_is_written(tmp_path):
    with JobDirectory(tmp_path, job()) as directory:
        assert os.stat(directory.inputs_dir / "arrays.npz").st_nlink == 1
    assert not (tmp_path / SHARED_DIR).exists()


def test_nothing_is_written_through_an_existing_name(tmp_path):
    """The host only creates files: writing a job's files again (even as root, past the 0555 directories) is
    refused, where a plain write would have rewritten the copy every other job links."""
    shared = SharedInputs(tmp_path)
    with JobDirectory(tmp_path, job(), shared) as directory:
        for sharing in (None, shared):
            with pytest.raises(OSError):
                directory._write_read_only(directory.inputs_dir, {"arrays.npz": b"\0" * len(BIG)}, sharing)
        with pytest.raises(OSError):
            directory.write_job(job())
        assert (directory.inputs_dir / "arrays.npz").read_bytes() == BIG
    with JobDirectory(tmp_path, job(), shared) as directory:
        assert (directory.inputs_dir / "arrays.npz").read_bytes() == BIG


def test_copies_beyond_the_cap_are_removed_but_not_from_jobs_that_link_them(tmp_path):
    shared = SharedInputs(tmp_path)
    with JobDirectory(tmp_path, job(b"first" + BIG), shared) as holder:
        for index in range(SHARED_MAX_FILES):
            with JobDirectory(tmp_path, job(str(index).encode() + BIG), shared):
                pass
        assert len(list(shared.directory.iterdir())) == SHARED_MAX_FILES
        assert (holder.inputs_dir / "arrays.npz").read_bytes() == b"first" + BIG


def test_the_copies_go_with_their_process(tmp_path):
    shared = SharedInputs(tmp_path)
    with JobDirectory(tmp_path, job(), shared):
        pass
    dead = tmp_path / SHARED_DIR / "999999999-0123"  # a pid no process has
    dead.mkdir()
    (dead / "copy").write_bytes(b"x")
    assert remove_orphan_job_dirs(tmp_path) == 1
    assert not dead.exists() and shared.directory.is_dir()  # this process's copies stay while it lives
    shared.remove()
    assert list((tmp_path / SHARED_DIR).iterdir()) == []


def test_a_copy_removed_from_outside_is_written_again(tmp_path):
    shared = SharedInputs(tmp_path)
    with JobDirectory(tmp_path, job(), shared):
        pass
    for copy in shared.directory.iterdir():
        copy.unlink()
    with JobDirectory(tmp_path, job(), shared) as written:  # this job writes its own file
        assert (written.inputs_dir / "arrays.npz").read_bytes() == BIG
    with JobDirectory(tmp_path, job(), shared) as linked:
        assert os.stat(linked.inputs_dir / "arrays.npz").st_nlink == 2 and shared.enabled


@pytest.mark.parametrize("size", [0, 1, 65536, 3 * 1024 * 1024 + 7])
def test_the_result_is_read_whole_up_to_its_cap(tmp_path, size):
    content = os.urandom(size)
    with JobDirectory(tmp_path, job()) as directory:
        (directory.out_dir / "result.bin").write_bytes(content)
        assert directory.read_result(32 * 1024 * 1024) == content
        assert directory.read_result(size // 2) == content[:size // 2]
        assert directory.read_result(size + 1) == content


def test_a_result_larger_than_its_size_said_is_still_read_to_its_end(tmp_path, monkeypatch):
    content = os.urandom(300 * 1024)
    with JobDirectory(tmp_path, job()) as directory:
        (directory.out_dir / "result.bin").write_bytes(content)
        monkeypatch.setattr(os, "fstat", lambda fd: os.stat_result((0,) * 6 + (1000,) + (0,) * 3))  # grew since
        assert directory.read_result(32 * 1024 * 1024) == content
