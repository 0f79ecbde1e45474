"""Dashboard: login, session cookie flags, CSRF refusal, authorization, pages, charts, actions, live JSON."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET

from sqlalchemy import func, select

from api.web.security import COOKIE_NAME
from grader.store.db import session_scope
from grader.store.models import Assignment, Enrollment, GradingRun, Submission, User
from grader.store.signing import sign_run
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_submission

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _csrf(client, path: str = "/login") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return CSRF.search(response.text).group(1)


def _login(client) -> str:
    token = _csrf(client)
    response = client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                           "csrf_token": token, "next": "/dashboard"})
    assert response.status_code == 303, response.text
    return _csrf(client, "/dashboard/courses/cnn101")


def _set_cookie_header(response) -> str:
    return next(value for key, value in response.headers.multi_items()
                if key == "set-cookie" and value.startswith(COOKIE_NAME))


def test_pages_need_login_and_redirect_back(client, seed):
    response = client.get("/dashboard/assignments/cnn-spatial")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fdashboard%2Fassignments%2Fcnn-spatial"
    assert client.get("/dashboard/assignments/cnn-spatial/grades.csv").status_code == 303


def test_login_sets_signed_httponly_samesite_cookie(client, seed):
    token = _csrf(client)
    response = client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                           "csrf_token": token, "next": "/dashboard/assignments/cnn-spatial"})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/assignments/cnn-spatial"
    cookie = _set_cookie_header(response).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http in this test; see the https test below
    assert client.get("/dashboard/assignments/cnn-spatial").status_code == 200


def test_cookie_is_secure_behind_https(client, seed):
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "secure" in _set_cookie_header(response).lower()


def test_wrong_password_and_students_cannot_log_in(client, seed):
    token = _csrf(client)
    for email, password in ((INSTRUCTOR_EMAIL, "wrong"), ("ann@example.edu", ""), ("nobody@example.edu", "x")):
        response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        assert response.status_code in (401, 422)
        assert client.get("/dashboard").status_code == 303


def test_login_refuses_an_open_redirect(client, seed):
    token = _csrf(client)
    response = client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                           "csrf_token": token, "next": "//evil.example/x"})
    assert response.headers["location"] == "/dashboard"


def test_forms_without_the_csrf_token_are_refused(client, seed):
    assert client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD}).status_code == 403
    token = _login(client)
    form = {"slug": "cnn-two", "title": "Two"}
    assert client.post("/dashboard/courses/cnn101/assignments", data=form).status_code == 403
    assert client.post("/dashboard/courses/cnn101/assignments",
                       data={**form, "csrf_token": token[:-2] + "xx"}).status_code == 403
    with session_scope() as db:
        assert db.scalar(select(Assignment).where(Assignment.slug == "cnn-two")) is None
    response = client.post("/dashboard/courses/cnn101/assignments", data={**form, "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/assignments/cnn-two")


def test_tampered_cookie_is_anonymous(client, seed):
    _login(client)
    value = client.cookies.get(COOKIE_NAME)
    client.cookies.set(COOKIE_NAME, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert client.get("/dashboard").status_code == 303


def test_logout_ends_the_session(client, seed):
    token = _login(client)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 303
    assert COOKIE_NAME not in client.cookies or not client.cookies.get(COOKIE_NAME)
    assert client.get("/dashboard").status_code == 303


def _seed_results(seed) -> int:
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == seed.assignment_slug))
        ann, bob = db.get(User, seed.student_id), db.get(User, seed.other_student_id)
        make_submission(db, assignment, ann, score=30.0, failed=2, source=b"def conv2d():\n    return 1\n")
        best = make_submission(db, assignment, ann, score=61.5, accuracy=0.78)
        make_submission(db, assignment, bob, status="running")
        return best.id


def test_course_assignment_and_submission_pages(client, seed):
    best_id = _seed_results(seed)
    _login(client)
    course = client.get("/dashboard/courses/cnn101").text
    assert "cnn-spatial" in course and 'data-testid="queue-depth"' in course
    page = client.get("/dashboard/assignments/cnn-spatial")
    assert page.status_code == 200
    assert "Ann Lovelace" in page.text and "Bob Babbage" in page.text and "78.0%" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    submission = client.get(f"/dashboard/submissions/{best_id}").text
    assert 'class="highlight"' in submission and "conv2d.forward.case0" in submission
    first = client.get(f"/dashboard/submissions/{best_id - 1}").text
    assert "Check the padding." in first  # a failed check's feedback is on the page
    download = client.get(f"/dashboard/submissions/{best_id - 1}/file")
    assert download.content == b"def conv2d():\n    return 1\n"
    assert download.headers["content-disposition"].startswith("attachment")
    curve = client.get(f"/dashboard/submissions/{best_id}/runs/{_run_id(best_id)}/curve.svg")
    assert curve.headers["content-type"].startswith("image/svg+xml")
    ET.fromstring(curve.content)


def test_charts_are_svg(client, seed):
    _seed_results(seed)
    _login(client)
    for name in ("scores", "checks", "accuracy", "timeline"):
        response = client.get(f"/dashboard/assignments/cnn-spatial/charts/{name}.svg")
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
        assert ET.fromstring(response.content).tag.endswith("svg")
    assert client.get("/dashboard/assignments/cnn-spatial/charts/nope.svg").status_code == 404


def test_grades_csv_one_row_per_student(client, seed):
    _seed_results(seed)
    _login(client)
    response = client.get("/dashboard/assignments/cnn-spatial/grades.csv?policy=best")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    by_email = {row["email"]: row for row in rows}
    assert set(by_email) == {"ann@example.edu", "bob@example.edu"}
    assert float(by_email["ann@example.edu"]["score"]) == 61.5 and by_email["bob@example.edu"]["score"] == ""


def test_roster_upload_enrolls_and_shows_tokens_once(client, seed):
    token = _login(client)
    roster = "email,name,student_number\ncara@example.edu,Cara,s003\nann@example.edu,Ann Lovelace,s001\n"
    response = client.post("/dashboard/courses/cnn101/roster", data={"csrf_token": token},
                           files={"file": ("roster.csv", roster.encode(), "text/csv")})
    assert response.status_code == 200, response.text
    assert "1 new" in response.text and "gt_" in response.text
    with session_scope() as db:
        assert db.scalar(select(func.count(Enrollment.id)).where(Enrollment.role == "student")) == 3


def test_regrade_one_queues_a_run(client, seed, published):
    best_id = _seed_results(seed)
    token = _login(client)
    response = client.post(f"/dashboard/submissions/{best_id}/regrade", data={"csrf_token": token})
    assert response.status_code == 303
    with session_scope() as db:
        runs = db.scalars(select(GradingRun).where(GradingRun.submission_id == best_id)).all()
        assert [run.kind for run in runs] == ["submit", "regrade"] and runs[-1].status == "queued"
        assert published == [(runs[-1].id, "correctness")]
    live = client.get(f"/dashboard/submissions/{best_id}/live.json").json()
    assert live["status"] == "queued" and live["finished"] is False


def test_regrade_all_goes_through_a_preview(client, seed, published):
    best_id = _seed_results(seed)
    token = _login(client)
    response = client.post("/dashboard/assignments/cnn-spatial/regrade", data={"csrf_token": token})
    assert response.status_code == 303
    preview_url = response.headers["location"]
    page = client.get(preview_url)
    assert page.status_code == 200 and "preview runs finished" in page.text
    assert client.get(preview_url + "/live.json").json() == {"done": False}
    with session_scope() as db:
        previews = db.scalars(select(GradingRun).where(GradingRun.kind == "preview")).all()
        assert len(previews) == 3 and not any(run.applied for run in previews)
        assert sorted(run_id for run_id, _ in published) == sorted(run.id for run in previews)
    refused = client.post(preview_url + "/confirm", data={"csrf_token": token})
    assert refused.status_code == 303 and "finished" in refused.headers["location"]
    # The preview runs finish (as a worker would leave them): Ann's best submission would drop to 40.
    with session_scope() as db:
        for run in db.scalars(select(GradingRun).where(GradingRun.kind == "preview")):
            run.status, run.finished_at = "graded", run.created_at
            run.score = 40.0 if run.submission_id == best_id else run.submission.runs[0].score
            run.max_score = 61.5
            run.signature = sign_run(run)
    assert client.get(preview_url + "/live.json").json() == {"done": True}
    page = client.get(preview_url)
    assert "1 score(s) would change" in page.text and "-21.5" in page.text
    assert "61.5/61.5" in client.get(f"/badges/{seed.badge_token}.svg").text  # nothing applied yet
    applied = client.post(preview_url + "/confirm", data={"csrf_token": token})
    assert applied.status_code == 303 and "Regrade+applied" in applied.headers["location"].replace("%20", "+")
    assert "40/61.5" in client.get(f"/badges/{seed.badge_token}.svg").text


def test_live_queue_json(client, seed):
    _seed_results(seed)
    _login(client)
    data = client.get("/dashboard/live.json?course=cnn101").json()
    assert data["depth"] == 0 and [run["student"] for run in data["running"]] == ["bob@example.edu"]


def test_student_page_shows_badge_markdown(client, seed):
    token = _csrf(client, "/student")
    response = client.post("/student", data={"csrf_token": token, "token": seed.student_token})
    assert response.status_code == 200
    assert f"/badges/{seed.badge_token}.svg" in response.text and "![cnn-spatial](" in response.text
    bad = client.post("/student", data={"csrf_token": token, "token": "gt_wrong"})
    assert bad.status_code == 401


def test_submit_client_is_served(client):
    response = client.get("/client/grader_submit.py")
    assert response.status_code == 200 and "def main(" in response.text


def _run_id(submission_id: int) -> int:
    with session_scope() as db:
        return db.get(Submission, submission_id).runs[-1].id


def test_dashboard_rotates_a_badge(client, seed):
    token = _login(client)
    page = client.get("/dashboard/assignments/cnn-spatial").text
    assert f"/badges/{seed.badge_token}.svg" in page
    response = client.post(f"/dashboard/assignments/cnn-spatial/badges/{seed.student_id}/rotate",
                           data={"csrf_token": token})
    assert response.status_code == 303
    assert client.get(f"/badges/{seed.badge_token}.svg").status_code == 404
    page = client.get("/dashboard/assignments/cnn-spatial").text
    assert f"/badges/{seed.badge_token}.svg" not in page and "Rotate badge" in page


def test_repeated_failed_logins_are_throttled(client, seed):
    token = _csrf(client)
    for _ in range(10):
        response = client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": "guess", "csrf_token": token})
        assert response.status_code == 401
    response = client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 429 and "Too many failed logins" in response.text
    assert client.get("/dashboard").status_code == 303


def test_a_late_submission_shows_what_counts(client, seed):
    """The page shows the counted score (grader/services/scores.py) beside what the run earned."""
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == seed.assignment_slug))
        submission = make_submission(db, assignment, db.get(User, seed.student_id), score=40.0)
        submission.late, submission.late_days = True, 1  # the factory's policy: 10% per started day
        submission_id = submission.id
    _login(client)
    page = client.get(f"/dashboard/submissions/{submission_id}").text
    assert 'data-testid="counted-score"' in page and "Counts 36/" in page and "90.0% of 40" in page
