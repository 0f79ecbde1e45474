"""The similarity report end to end except the broker: requested on the dashboard (only after the due date, staff
only), computed by the task's function against real Postgres, shown ranked with the renamed copy first and the
starter-only file near zero, one pair side by side with the overlap highlighted; students get no page.
The Celery worker that runs the task on the training queue is exercised in tests/api/web/browser/test_browser_student.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from grader import similarity_task
from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.store.models import Assignment, SimilarityReport, User
from grader.store.models import utcnow
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_submission
from tests.grader.test_similarity import STARTER, disguised

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SUBMISSIONS = PROJECT_ROOT / "tests" / "fixtures" / "submissions"


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(similarity_task, "publish", sent.append)
    return sent


def _staff(client) -> str:
    csrf = CSRF.search(client.get("/login").text).group(1)
    assert client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                       "csrf_token": csrf, "next": "/dashboard"}).status_code == 303
    return CSRF.search(client.get("/dashboard/assignments/cnn-spatial/similarity").text).group(1)


def _students_submit(seed, due_in: timedelta) -> dict[str, int]:
    from tests.factories import make_student

    good = (SUBMISSIONS / "good_vectorized.py").read_text()
    files = {"ann@example.edu": good, "bob@example.edu": disguised(good),
             "cara@example.edu": (SUBMISSIONS / "good_loop.py").read_text(), "dan@example.edu": STARTER}
    ids = {}
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == seed.assignment_slug))
        assignment.due_at = utcnow() + due_in
        for email, source in files.items():
            user = db.scalar(select(User).where(User.email == email)) or make_student(db, assignment.course, email)[0]
            make_submission(db, assignment, user, source=b"# an earlier try\n", score=1.0)
            ids[email] = make_submission(db, assignment, user, source=source.encode(), score=10.0).id
    return ids


def test_report_ranks_the_renamed_copy_first_and_the_starter_near_zero(client, seed, queued):
    ids = _students_submit(seed, due_in=timedelta(hours=-1))
    csrf = _staff(client)
    response = client.post("/dashboard/assignments/cnn-spatial/similarity", data={"csrf_token": csrf},
                           files={"starter": ("starter_spatial.py", STARTER.encode())})
    assert response.status_code == 303 and "queued" in response.headers["location"]
    assert len(queued) == 1
    assert ">queued<" in client.get("/dashboard/assignments/cnn-spatial/similarity").text
    similarity_task.run_report(queued[0])
    similarity_task.run_report(queued[0])  # idempotent: a finished report is left alone
    with session_scope() as db:
        report = db.get(SimilarityReport, queued[0])
        assert report.status == "done" and report.total_pairs == 6
        top = report.pairs[0]
        assert {top["first"], top["second"]} == {ids["ann@example.edu"], ids["bob@example.edu"]}
        assert top["score"] > 0.9
        starter_pairs = [p for p in report.pairs if ids["dan@example.edu"] in (p["first"], p["second"])]
        assert all(pair["score"] < 0.1 for pair in starter_pairs)
    live = client.get("/dashboard/assignments/cnn-spatial/similarity/live.json").json()
    assert live == {"status": "done", "done": True, "done_pairs": 6, "total_pairs": 6}
    page = client.get("/dashboard/assignments/cnn-spatial/similarity").text
    ranked = re.findall(r"<tr><th scope=\"row\">1</th><td>([^<]+)</td><td>([^<]+)</td>", page)
    assert set(ranked[0]) == {"ann@example.edu", "bob@example.edu"}
    pair = client.get(f"/dashboard/assignments/cnn-spatial/similarity/{queued[0]}/pairs/1")
    assert pair.status_code == 200 and pair.text.count("<mark>") >= 2
    assert "&lt;" in pair.text or "<mark>" in pair.text  # the sources are escaped, only <mark> is markup


def test_refused_before_the_due_date_and_never_shown_to_students(client, seed, queued):
    _students_submit(seed, due_in=timedelta(days=1))
    csrf = _staff(client)
    response = client.post("/dashboard/assignments/cnn-spatial/similarity", data={"csrf_token": csrf})
    assert "runs+after+the+due+date" in response.headers["location"].replace("%20", "+") and queued == []
    client.cookies.clear()
    csrf = CSRF.search(client.get("/student/login").text).group(1)
    client.post("/student/login", data={"csrf_token": csrf, "token": seed.student_token})
    assert client.get("/student/home").status_code == 200
    assert client.get("/dashboard/assignments/cnn-spatial/similarity").headers["location"].startswith("/login")
