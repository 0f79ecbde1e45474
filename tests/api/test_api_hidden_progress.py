"""A hidden check's case stays out of every channel a student reads before release, while it runs and after:
the live stream, the JSON status, the live status of the student's page, the page itself and the run. Staff see the
case by name on the same channels. Real API, Postgres, Redis, Celery worker and Docker sandbox; the default spec
hides `conv2d.*.k5_stride2_pad1_odd`, and the file sleeps inside that case so the test can look while it runs."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.main import create_app
from grader.store.db import session_scope
from grader.store.models import GradingRun, RunEvent, utcnow
from tests.factories import good_source, make_world
from tests.service_fixtures import submit, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

HIDDEN_RUN = "conv2d.k5_stride2_pad1_odd"
# Any of these in a student's view names the hidden case (its id, its call, its input shape).
CASE_NAMES = (HIDDEN_RUN, "k5_stride2", "kernel_size=5, stride=2, padding=1", "(2, 3, 11, 9)")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SLOW_THEN_EXIT_IN_HIDDEN_CASE = good_source().decode() + '''

class Conv2D(Conv2D):
    def forward(self, x):
        if tuple(x.data.shape) == (2, 3, 11, 9):
            import os
            import time
            time.sleep(3)
            os._exit(3)
        return super().forward(x)
'''


def _leaks(text: str) -> list[str]:
    return [name for name in CASE_NAMES if name in text]


def _last_progress(run_id: int) -> dict | None:
    with session_scope() as db:
        event = db.scalar(select(RunEvent).where(RunEvent.run_id == run_id, RunEvent.type == "progress")
                          .order_by(RunEvent.id.desc()).limit(1))
        return event.data if event is not None else None


def _finished(run_id: int) -> bool:
    with session_scope() as db:
        return db.get(GradingRun, run_id).finished


def _signed_in(path: str, data: dict) -> TestClient:
    browser = TestClient(create_app(), follow_redirects=False)
    page = browser.get(path)
    response = browser.post(path, data={**data, "csrf_token": CSRF.search(page.text).group(1)})
    assert response.status_code == 303, response.text
    return browser


def _stream(client, url: str, headers: dict) -> str:
    with client.stream("GET", url, headers=headers) as stream:
        return "".join(stream.iter_text())


def test_students_see_a_hidden_case_only_as_a_numbered_label_before_release(client, start_worker):
    world = make_world(due_at=utcnow() + timedelta(days=7))
    student = _signed_in("/student/login", {"token": world.alice_token})
    staff = _signed_in("/login", {"email": world.instructor_email, "password": world.instructor_password,
                                  "next": "/dashboard"})
    start_worker()
    accepted = submit(client, world, source=SLOW_THEN_EXIT_IN_HIDDEN_CASE.encode())
    submission_id, run_id = accepted["submission_id"], accepted["run_id"]
    wait_for(lambda: (_last_progress(run_id) or {}).get("running") == HIDDEN_RUN, 120, "the hidden case to run")

    live = student.get(f"/student/submissions/{submission_id}/live.json").json()
    assert "hidden check 1" in live["progress_text"] and not _leaks(live["progress_text"]), live
    status = client.get(accepted["status_url"], headers=world.headers("alice"))
    assert status.status_code == 200 and not _leaks(status.text)
    staff_live = staff.get(f"/dashboard/submissions/{submission_id}/live.json").json()
    assert HIDDEN_RUN in staff_live["progress_text"], staff_live

    wait_for(lambda: _finished(run_id), 120, "the run to finish")
    student_stream = _stream(client, f"{accepted['status_url']}/events", world.headers("alice"))
    assert '"running": "hidden check 1"' in student_stream and not _leaks(student_stream)
    assert HIDDEN_RUN in _stream(client, f"{accepted['status_url']}/events", world.headers("instructor"))
    view = client.get(accepted["status_url"], headers=world.headers("alice"))
    assert "while running a hidden check" in view.json()["result"]["message"] and not _leaks(view.text), view.text
    assert not _leaks(client.get(f"/api/v1/runs/{run_id}", headers=world.headers("alice")).text)
    page = student.get(f"/student/submissions/{submission_id}").text
    assert "hidden check" in page and not _leaks(page)
    staff_view = client.get(accepted["status_url"], headers=world.headers("instructor")).text
    assert "kernel_size=5, stride=2, padding=1" in staff_view  # kept in full for staff
