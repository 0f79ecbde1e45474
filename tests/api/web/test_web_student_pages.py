"""The students' pages and per-student deadlines over HTTP, with real Postgres: sign-in by token or password, the
submit form with the API's limits, history, feedback with hidden checks withheld, another student's submission
refused; extensions, late-day tokens and a due-date change recompute lateness from upload time, with audit entries.
Publishing to the broker is recorded instead (the `published` fixture); the real worker is in tests/api/web/browser."""

from __future__ import annotations

import copy
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from grader.services.scores import counted_score
from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.store.models import Assignment, AuditLog, Submission, User, utcnow
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_submission

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
GOOD = (PROJECT_ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py").read_bytes()


def _csrf(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return CSRF.search(response.text).group(1)


def _sign_in(client, token: str) -> None:
    csrf = _csrf(client, "/student/login")
    response = client.post("/student/login", data={"csrf_token": csrf, "token": token})
    assert response.status_code == 303 and response.headers["location"] == "/student/home", response.text


def _staff_login(client) -> str:
    csrf = _csrf(client, "/login")
    response = client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                           "csrf_token": csrf, "next": "/dashboard"})
    assert response.status_code == 303
    return _csrf(client, "/dashboard/assignments/cnn-spatial/extensions")


def _late_submission(seed, days_late: float, score: float = 60.0) -> int:
    """Ann's graded submission uploaded `days_late` days after the assignment's due date (stored as judged then)."""
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == seed.assignment_slug))
        assignment.due_at = utcnow() - timedelta(days=days_late)
        submission = make_submission(db, assignment, db.get(User, seed.student_id), score=score)
        submission.late_days, submission.late = int(-(-days_late // 1)), True
        return submission.id


def test_pages_need_sign_in_and_a_wrong_token_is_refused(client, seed):
    assert client.get("/student/home").headers["location"].startswith("/student/login?next=")
    csrf = _csrf(client, "/student/login")
    wrong = client.post("/student/login", data={"csrf_token": csrf, "token": "gt_wrong"})
    assert wrong.status_code == 401 and "That token is not valid" in wrong.text
    assert client.post("/student/login", data={"token": seed.student_token}).status_code == 403  # no CSRF token


def test_sign_in_submit_and_see_history_and_feedback(client, seed, published):
    _sign_in(client, seed.student_token)
    home = client.get("/student/home")
    assert "/student/assignments/cnn-spatial" in home.text
    csrf = _csrf(client, "/student/assignments/cnn-spatial")
    refused = client.post("/student/assignments/cnn-spatial/submit", data={"csrf_token": csrf},
                          files={"file": ("spatial.py", b"def broken(:\n")})
    assert refused.status_code == 303 and "does+not+parse" in refused.headers["location"].replace("%20", "+")
    assert published == []
    accepted = client.post("/student/assignments/cnn-spatial/submit", data={"csrf_token": csrf},
                           files={"file": ("spatial.py", GOOD)})
    assert accepted.status_code == 303 and accepted.headers["location"].startswith("/student/submissions/")
    assert len(published) == 1
    submission_id = int(accepted.headers["location"].split("/")[-1].split("?")[0])
    page = client.get(f"/student/submissions/{submission_id}")
    assert "place 1 in the queue" in page.text and 'data-live-url="/student/submissions/' in page.text
    live = client.get(f"/student/submissions/{submission_id}/live.json").json()
    assert live["status"] == "queued" and "place 1 in the queue" in live["progress_text"]
    history = client.get("/student/assignments/cnn-spatial").text
    assert f"/student/submissions/{submission_id}" in history and "on time" in history

    with session_scope() as db:  # a graded run with a failing check and a training curve
        assignment = db.scalar(select(Assignment).where(Assignment.slug == "cnn-spatial"))
        graded = make_submission(db, assignment, db.get(User, seed.student_id), score=40.0, failed=1, accuracy=0.62)
        result = copy.deepcopy(graded.runs[0].result)
        result["tests"][0].update(visibility="after_due_date", output="secret detail of a withheld check")
        result["tests"][1].update(status="failed", score=0.0, output="Output differs. Check the padding.")
        graded.runs[0].result = result
        graded_id = graded.id
    page = client.get(f"/student/submissions/{graded_id}").text
    assert "Check the padding." in page and "secret detail" not in page and "shown after the due date" in page
    assert "conv2d.forward.case0" not in page and "hidden check 1" in page
    assert "the server&#39;s signature on this result verifies" in page or "signature on this result verifies" in page
    assert f"/student/submissions/{graded_id}/runs/" in page and "Training curve data" in page and "62.0%" in page
    curve = client.get(re.search(r'src="(/student/submissions/\d+/runs/\d+/curve.svg)"', page).group(1))
    assert curve.status_code == 200 and curve.text.startswith("<?xml")


def test_another_students_submission_is_not_found(client, seed):
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == "cnn-spatial"))
        bobs = make_submission(db, assignment, db.get(User, seed.other_student_id), score=10.0).id
    _sign_in(client, seed.student_token)
    assert client.get(f"/student/submissions/{bobs}").status_code == 404
    assert client.get(f"/student/submissions/{bobs}/live.json").status_code == 404


def test_password_set_with_the_token_then_sign_in_with_it(client, seed):
    _sign_in(client, seed.student_token)
    csrf = _csrf(client, "/student/home")
    short = client.post("/student/password", data={"csrf_token": csrf, "token": seed.student_token, "password": "x"})
    assert "at+least+10" in short.headers["location"].replace("%20", "+")
    wrong = client.post("/student/password", data={"csrf_token": csrf, "token": seed.other_student_token,
                                                   "password": "a long enough one"})
    assert "not+your+API+token" in wrong.headers["location"].replace("%20", "+")
    done = client.post("/student/password", data={"csrf_token": csrf, "token": seed.student_token,
                                                  "password": "a long enough one"})
    assert done.status_code == 303 and "Password+set" in done.headers["location"].replace("%20", "+")
    client.cookies.clear()
    csrf = _csrf(client, "/student/login")
    response = client.post("/student/login", data={"csrf_token": csrf, "email": "ann@example.edu",
                                                   "password": "a long enough one"})
    assert response.status_code == 303 and client.get("/student/home").status_code == 200
    assert client.get("/dashboard").status_code == 303  # a student's session is not a staff session


def test_extension_removes_the_late_penalty_and_is_audited(client, seed):
    submission_id = _late_submission(seed, days_late=1.5)
    with session_scope() as db:
        assert counted_score(db.get(Submission, submission_id)).score == 48.0  # 2 days x 10%
    csrf = _staff_login(client)
    due = (utcnow() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = client.post("/dashboard/assignments/cnn-spatial/extensions",
                           data={"csrf_token": csrf, "email": "ann@example.edu", "due_at": due, "reason": "illness"})
    assert "recomputed+for+1+submission" in response.headers["location"].replace("%20", "+")
    with session_scope() as db:
        submission = db.get(Submission, submission_id)
        assert (submission.late_days, submission.late, counted_score(submission).score) == (0, False, 60.0)
        actions = [entry.action for entry in db.scalars(select(AuditLog).order_by(AuditLog.id))]
        assert actions == ["extension", "lateness"]
    assert "illness" in client.get("/dashboard/assignments/cnn-spatial/extensions").text
    client.cookies.clear()
    _sign_in(client, seed.student_token)
    page = client.get("/student/assignments/cnn-spatial").text
    assert "an extension granted to you" in page and "on time" in page
    client.cookies.clear()
    csrf = _staff_login(client)
    bad = client.post("/dashboard/assignments/cnn-spatial/extensions",
                      data={"csrf_token": csrf, "email": "nobody@example.edu", "due_at": due})
    assert "No+one+with+the+email" in bad.headers["location"].replace("%20", "+")


def test_late_day_tokens_and_a_due_date_change_recompute_lateness(client, seed):
    submission_id = _late_submission(seed, days_late=2.5)  # 3 started days late
    csrf = _staff_login(client)
    client.post("/dashboard/assignments/cnn-spatial/late-days",
                data={"csrf_token": csrf, "email": "ann@example.edu", "tokens": "2"})
    with session_scope() as db:
        assert db.get(Submission, submission_id).late_days == 1
    from grader.services import courses
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == "cnn-spatial"))
        courses.update_assignment(db, assignment, {"due_at": assignment.due_at - timedelta(days=2)},
                                  actor_id=seed.instructor_id)
    with session_scope() as db:
        assert db.get(Submission, submission_id).late_days == 3  # 5 started days, 2 covered by tokens
        actions = [entry.action for entry in db.scalars(select(AuditLog).order_by(AuditLog.id))]
        assert actions == ["late_days", "lateness", "due_date", "lateness"]


def test_deadline_form_recomputes_lateness_and_staff_see_every_deadline_change(client, seed):
    """The course due date and late policy are set from the dashboard; the page lists every deadline change of the
    assignment from the audit log, and another course's instructor sees none of them, here or in the API."""
    from grader.services import audit, extensions
    from tests.factories import make_assignment, make_course, make_instructor, make_student

    submission_id = _late_submission(seed, days_late=0.5)  # 1 started day late under 10% per day
    csrf = _staff_login(client)
    client.post("/dashboard/assignments/cnn-spatial/late-days",
                data={"csrf_token": csrf, "email": "bob@example.edu", "tokens": "1"})
    due = (utcnow() - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post("/dashboard/assignments/cnn-spatial/deadline",
                           data={"csrf_token": csrf, "due_at": due, "penalty_percent": "20", "max_late_days": "5"})
    assert response.status_code == 303 and "lateness+is+recomputed" in response.headers["location"].replace(
        "%20", "+"), response.headers["location"]
    with session_scope() as db:
        submission = db.get(Submission, submission_id)
        assert submission.late_days == 4  # uploaded 3 days and a bit after the new due date
        assert submission.assignment.late_policy == {"penalty_per_day": 0.2, "max_late_days": 5}
        assert counted_score(submission).score == pytest.approx(12.0)  # 60 points less 4 days x 20%
    bad = client.post("/dashboard/assignments/cnn-spatial/deadline",
                      data={"csrf_token": csrf, "due_at": "next friday", "penalty_percent": "250"})
    assert "Not+changed" in bad.headers["location"].replace("%20", "+")
    page = client.get("/dashboard/assignments/cnn-spatial/extensions").text
    history = page[page.index('data-testid="deadline-history"'):]
    for action in ("due date", "late policy", "late days", "lateness"):
        assert f"<td>{action}</td>" in history, action
    assert INSTRUCTOR_EMAIL in history and "penalty_per_day" in history and "bob@example.edu" in history

    with session_scope() as db:  # another course, its own instructor, with an extension of its own
        olga = make_instructor(db, "olga@example.edu", "olga-password-1")
        other = make_course(db, olga, slug="other-course")
        other_hw = make_assignment(db, other, slug="other-hw")
        make_student(db, other, "cleo@example.edu", "Cleo", "x1")
        extensions.grant_extension(db, other_hw, email="cleo@example.edu", due_at=utcnow(), reason="own", actor=olga)
        olga_view, prof_view = audit.audit_for(db, olga), audit.audit_for(db, db.get(User, seed.instructor_id))
        assert [entry.action for entry in olga_view.entries] == ["extension"] and olga_view.chain_valid
        assert {"due_date", "late_policy", "late_days", "lateness"} <= {entry.action for entry in prof_view.entries}
        assert "extension" not in {entry.action for entry in prof_view.entries}
        assert [change.student for change in audit.deadline_history(db, other_hw)] == ["cleo@example.edu"]


def test_saving_only_the_late_policy_keeps_a_due_date_set_to_the_second(client, seed):
    """The form shows the due date it will send back; a deadline set through the API at 23:59:59.5 stays as it is
    (no due_date entry, no lateness recomputed) when only the policy changes, and an offset is converted to UTC."""
    due = utcnow().replace(hour=23, minute=59, second=59, microsecond=500000)
    with session_scope() as db:
        db.scalar(select(Assignment).where(Assignment.slug == "cnn-spatial")).due_at = due
    csrf = _staff_login(client)
    page = client.get("/dashboard/assignments/cnn-spatial/extensions").text
    shown = re.search(r'id="deadline-due" type="datetime-local" step="1" name="due_at" value="([^"]+)"', page).group(1)
    assert shown == due.strftime("%Y-%m-%dT%H:%M:%S")
    response = client.post("/dashboard/assignments/cnn-spatial/deadline",
                           data={"csrf_token": csrf, "due_at": shown, "penalty_percent": "5", "max_late_days": "2"})
    assert "due+date+is+unchanged" in response.headers["location"].replace("%20", "+")
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == "cnn-spatial"))
        assert assignment.due_at == due and assignment.late_policy == {"penalty_per_day": 0.05, "max_late_days": 2}
        assert [entry.action for entry in db.scalars(select(AuditLog))] == ["late_policy"]
    client.post("/dashboard/assignments/cnn-spatial/deadline",
                data={"csrf_token": csrf, "due_at": "2030-01-02T10:00:00+02:00", "penalty_percent": "5",
                      "max_late_days": "2"})
    with session_scope() as db:
        moved = db.scalar(select(Assignment).where(Assignment.slug == "cnn-spatial")).due_at
        assert moved.isoformat() == "2030-01-02T08:00:00+00:00"
