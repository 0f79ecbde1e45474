"""`make run` from a fresh clone on a plain Debian machine: nothing but python3, python3-venv, make, git and apt.

The machine is a cached debootstrap of Debian bookworm (tests/fixtures/cleanroom.py) entered as a chroot that sees
the host's Docker engine through its socket; it has no PostgreSQL or Redis binaries, and `make run` must not
install any. The clone is of the checkout's committed HEAD (a git bundle), so uncommitted changes are not tested
here. The demo's printed curl line is run as printed (from the host: curl is not on the plain machine, and the
file it names has the same path on both sides) and must end in a graded result with full points.

The two figures `make run` prints (set-up, and upload to graded result) are written to
var/cleanroom/make_run_times.json; README "Two commands" quotes them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from grader.settings import PROJECT_ROOT
from tests.fixtures.cleanroom import CLEANROOM_DIR, Cleanroom, base_rootfs, server_binaries

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]

SETUP_SECONDS_MAX = 900  # apt-get update and a PyPI download of the runtime dependencies on a busy machine
GRADE_SECONDS_MAX = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_in_log(log_path: Path, pattern: str, seconds: float, process: subprocess.Popen) -> re.Match:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        match = re.search(pattern, text)
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(1)
    raise AssertionError(f"no {pattern!r} in the output of `make run` (exit {process.poll()}):\n"
                         + log_path.read_text(errors="replace")[-6000:])


def test_make_run_on_a_plain_debian_machine_grades_the_printed_curl_upload():
    base = base_rootfs()
    assert server_binaries(base) == [], "the plain machine must not have PostgreSQL or Redis"
    room = Cleanroom.fresh(base)
    subprocess.run(["git", "-C", str(PROJECT_ROOT), "bundle", "create", str(room.shared / "source.bundle"), "HEAD"],
                   check=True, capture_output=True)
    port = _free_port()
    log_path = room.workdir / "make-run.log"
    command = (f"cd {room.shared} && git -c advice.detachedHead=false clone -q source.bundle repo && cd repo && "
               f"exec make run PORT={port}")
    process = room.start(command, log_path)
    try:
        _wait_in_log(log_path, r"Press Ctrl-C to stop", SETUP_SECONDS_MAX, process)
        text = log_path.read_text()
        assert re.search(r"^store:\s+sqlite:///", text, re.M), "make run must use the embedded SQLite store"
        assert re.search(r"^broker:\s+filesystem://", text, re.M), "make run must use the filesystem broker"
        assert "starting PostgreSQL" not in text and "starting Redis" not in text
        setup_seconds = float(_wait_in_log(log_path, r"set-up took ([\d.]+) s", 30, process).group(1))

        curl = re.search(r"^\s+(curl -sS -H 'Authorization: Bearer \S+' -F file=@\S+ \\\n\s+\S+)", text, re.M)
        assert curl, text[-3000:]
        accepted = json.loads(subprocess.run(curl.group(1).replace("\\\n", " "), shell=True, capture_output=True,
                                             text=True, check=True, timeout=60).stdout)
        assert accepted["status"] == "queued", accepted
        first_grade = _wait_in_log(log_path, r"first grade: submission (\d+) went from upload to a (\w+) result in "
                                             r"([\d.]+) s, score ([\d.]+)/([\d.]+)", GRADE_SECONDS_MAX, process)
        submission_id, status, grade_seconds, score, max_score = first_grade.groups()
        assert int(submission_id) == accepted["submission_id"]
        assert status == "graded" and float(score) == float(max_score) > 0, first_grade.group(0)

        token = re.search(r"student token:\s+(\S+)", text).group(1)
        body = json.loads(subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {token}",
                                          f"http://127.0.0.1:{port}{accepted['status_url']}"],
                                         capture_output=True, text=True, check=True, timeout=60).stdout)
        assert body["status"] == "graded" and body["passed"] is True, body
        assert (room.shared / "repo" / "var" / "grader.sqlite3").is_file()
        assert server_binaries(room.upper) == [], "make run installed PostgreSQL or Redis"
        measured = {"setup_seconds": setup_seconds, "first_grade_seconds": float(grade_seconds),
                    "load_average": os.getloadavg(), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S")}
        (CLEANROOM_DIR / "make_run_times.json").write_text(json.dumps(measured, indent=2) + "\n")
        print(f"\nclean machine: {measured}")
    finally:
        room.stop()
        leftovers = room.processes()
        room.remove()
    assert leftovers == [], f"make run left processes in the clean machine: {leftovers}"
