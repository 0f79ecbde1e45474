"""The dashboard and badges on the embedded default store (SQLite file, as `make run` uses with no servers)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from grader.store.db import database_url, session_scope
from grader.store.migrate import upgrade_head
from grader.store.models import Assignment, User
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_submission, seed_course
from tests.live_service import TEST_SECRET_KEY, environment


def test_pages_and_badge_on_sqlite(tmp_path, monkeypatch):
    from grader import tasks

    monkeypatch.setattr(tasks, "publish", lambda run_id, queue: None)  # no worker in this test
    with environment(DATABASE_URL="", BROKER_URL="", DATA_DIR=str(tmp_path), SECRET_KEY=TEST_SECRET_KEY):
        assert database_url().startswith("sqlite:///")
        upgrade_head()
        with session_scope() as db:
            seed = seed_course(db)
            assignment = db.scalar(select(Assignment))
            make_submission(db, assignment, db.get(User, seed.student_id), score=50.0, accuracy=0.8)
        with TestClient(create_app(), follow_redirects=False) as client:
            badge = client.get(f"/badges/{seed.badge_token}.svg")
            assert badge.status_code == 200 and "50/61.5" in badge.text
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
            client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                        "csrf_token": token})
            page = client.get("/dashboard/assignments/cnn-spatial")
            assert page.status_code == 200 and "80.0%" in page.text
            assert client.get("/dashboard/courses/cnn101").status_code == 200
            for name in ("scores", "checks", "accuracy", "timeline"):
                ET.fromstring(client.get(f"/dashboard/assignments/cnn-spatial/charts/{name}.svg").content)
            assert client.get("/dashboard/live.json?course=cnn101").json()["depth"] == 0


def test_upload_and_status_read_after_a_timed_run_on_sqlite(tmp_path, monkeypatch):
    """The queue estimate averages recent runs' stage times (a JSON lookup): SQLite needs it as a JSON path."""
    from grader import tasks

    monkeypatch.setattr(tasks, "publish", lambda run_id, queue: None)  # no worker in this test: the upload queues
    with environment(DATABASE_URL="", BROKER_URL="", DATA_DIR=str(tmp_path), SECRET_KEY=TEST_SECRET_KEY):
        upgrade_head()
        with session_scope() as db:
            seed = seed_course(db)
            assignment = db.scalar(select(Assignment))
            done = make_submission(db, assignment, db.get(User, seed.other_student_id), score=50.0)
            done.runs[0].stage_seconds = {"correctness": 3.5}
        with TestClient(create_app(), follow_redirects=False) as client:
            headers = {"Authorization": f"Bearer {seed.student_token}"}
            upload = client.post("/api/v1/assignments/cnn-spatial/submissions", headers=headers,
                                 files={"file": ("spatial.py", b"x = 1\n")})
            assert upload.status_code == 202, upload.text
            status = client.get(upload.json()["status_url"], headers=headers).json()
            assert status["status"] == "queued" and status["queue_position"] == 1
            assert status["estimated_start"] is not None
