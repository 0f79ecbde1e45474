"""The leaderboard: off unless the instructor turns it on; lists only students who chose a pseudonym, with their
best CIFAR-10 accuracy from a signed run (a higher unsigned or tampered one does not count) and its step time;
names are validated and unique. Real Postgres; results are stored rows as the worker writes them."""

from __future__ import annotations

import copy
import re

from sqlalchemy import select

from grader.store.db import session_scope
from grader.store.models import Assignment, User
from grader.store.signing import sign_run
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_submission

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _with_step(submission, step_ms: float) -> None:
    run = submission.runs[0]
    result = copy.deepcopy(run.result)
    result["stages"][1]["details"]["cifar10"]["step_ms"] = step_ms
    run.result = result
    run.signature = sign_run(run)


def _sign_in(client, token: str) -> str:
    client.cookies.clear()
    csrf = CSRF.search(client.get("/student/login").text).group(1)
    assert client.post("/student/login", data={"csrf_token": csrf, "token": token}).status_code == 303
    return CSRF.search(client.get("/student/home").text).group(1)


def test_leaderboard_opt_in_pseudonyms_and_signed_runs_only(client, seed):
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == seed.assignment_slug))
        ann, bob = db.get(User, seed.student_id), db.get(User, seed.other_student_id)
        _with_step(make_submission(db, assignment, ann, score=50.0, accuracy=0.71), 120.0)
        _with_step(make_submission(db, assignment, ann, score=50.0, accuracy=0.78), 95.5)
        make_submission(db, assignment, ann, score=50.0, accuracy=0.99, signed=False)  # never counts
        _with_step(make_submission(db, assignment, bob, score=50.0, accuracy=0.81), 210.0)
    csrf = _sign_in(client, seed.student_token)
    assert client.get("/student/assignments/cnn-spatial/leaderboard").status_code == 404  # off by default

    client.cookies.clear()
    csrf = CSRF.search(client.get("/login").text).group(1)
    client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD, "csrf_token": csrf})
    csrf = CSRF.search(client.get("/dashboard/assignments/cnn-spatial").text).group(1)
    switched = client.post("/dashboard/assignments/cnn-spatial/leaderboard", data={"csrf_token": csrf, "enabled": "true"})
    assert "Leaderboard+on" in switched.headers["location"].replace("%20", "+")

    csrf = _sign_in(client, seed.student_token)
    assert "No signed CIFAR-10 runs" in client.get("/student/assignments/cnn-spatial/leaderboard").text
    own_email = client.post("/student/assignments/cnn-spatial/leaderboard/name", data={"csrf_token": csrf, "name": "ann"})
    assert "not+your+name" in own_email.headers["location"].replace("%20", "+")
    client.post("/student/assignments/cnn-spatial/leaderboard/name", data={"csrf_token": csrf, "name": "Conv Queen"})
    board = client.get("/student/assignments/cnn-spatial/leaderboard.json").json()["rows"]
    assert board == [{"rank": 1, "name": "Conv Queen", "accuracy": 0.78, "step_ms": 95.5}]

    csrf = _sign_in(client, seed.other_student_token)
    taken = client.post("/student/assignments/cnn-spatial/leaderboard/name",
                        data={"csrf_token": csrf, "name": "Conv Queen"})
    assert "is+taken" in taken.headers["location"].replace("%20", "+")
    client.post("/student/assignments/cnn-spatial/leaderboard/name", data={"csrf_token": csrf, "name": "im2col fan"})
    page = client.get("/student/assignments/cnn-spatial/leaderboard").text
    assert page.index("im2col fan") < page.index("Conv Queen") and "ann@example.edu" not in page
    assert "81.0%" in page and "95.5 ms" in page
