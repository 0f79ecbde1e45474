"""`make run` on a fresh machine: the demo launcher in embedded mode (no DATABASE_URL/BROKER_URL), then its printed
curl line, which must end in a graded run stored in the database."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from grader.settings import PROJECT_ROOT
from tests.service_fixtures import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PORT = 8799


def test_make_run_demo_then_the_printed_curl_line(tmp_path):
    env = {**os.environ, "DATABASE_URL": "", "BROKER_URL": "", "DATA_DIR": str(tmp_path / "data")}
    log_path = tmp_path / "demo.log"
    with open(log_path, "wb") as log:
        demo = subprocess.Popen([sys.executable, "-m", "scripts.run_demo", "--port", str(PORT)], cwd=PROJECT_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "Press Ctrl-C" in log_path.read_text(), 90, "the demo to print its instructions")
        text = log_path.read_text()
        curl = re.search(r"(curl -sS -H 'Authorization: Bearer \S+' -F file=@\S+ \\\n\s+\S+)", text).group(1)
        student_token = re.search(r"student token:\s+(\S+)", text).group(1)
        time.sleep(3)  # the workers print "ready" after the API answers
        accepted = json.loads(subprocess.run(curl.replace("\\\n", " "), shell=True, capture_output=True, text=True,
                                             check=True).stdout)
        assert accepted["status"] == "queued"

        def graded():
            status = subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {student_token}",
                                     f"http://127.0.0.1:{PORT}{accepted['status_url']}"], capture_output=True,
                                    text=True).stdout
            body = json.loads(status)
            return body if body["status"] in ("graded", "error", "timeout") else None

        body = wait_for(graded, 180, "the demo submission to be graded", interval=1.0)
        assert body["status"] == "graded" and body["passed"] is True and body["runs"][0]["signed"]
        assert (tmp_path / "data" / "grader.sqlite3").exists()
    finally:
        os.kill(demo.pid, signal.SIGINT)  # what Ctrl-C does
        demo.wait(timeout=60)
    leftovers = subprocess.run(["pgrep", "-f", f"--port {PORT}"], capture_output=True, text=True).stdout.split()
    assert leftovers == [], f"the demo left processes running: {leftovers}"
