"""Dashboard side of issue 11's smaller holes: repository links only for http(s), any file name downloads."""

from __future__ import annotations

import re
from urllib.parse import unquote

from sqlalchemy import select

from grader.store.db import session_scope
from grader.store.models import Assignment, User
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_submission

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _login(client) -> None:
    token = CSRF.search(client.get("/login").text).group(1)
    response = client.post("/login", data={"email": INSTRUCTOR_EMAIL, "password": INSTRUCTOR_PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 303


def _submission(seed, *, repo: str = "", filename: str = "spatial.py") -> int:
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == seed.assignment_slug))
        submission = make_submission(db, assignment, db.get(User, seed.student_id), score=50.0,
                                     source=f"# {repo} {filename}\n".encode())
        submission.repo, submission.filename = repo, filename
        return submission.id


def test_repository_links_only_for_http(client, seed):
    _login(client)
    for repo in ("javascript:alert(document.cookie)", " JavaScript:alert(1)", "data:text/html,<script>alert(1)</script>",
                 "\x01javascript:alert(1)"):
        page = client.get(f"/dashboard/submissions/{_submission(seed, repo=repo)}").text
        assert 'rel="noopener nofollow"' not in page and "alert(" in page  # shown as text, not as a link
    page = client.get(f"/dashboard/submissions/{_submission(seed, repo='https://github.com/ann/cnn')}").text
    assert '<a href="https://github.com/ann/cnn" rel="noopener nofollow">' in page


def test_dashboard_download_of_any_file_name(client, seed):
    _login(client)
    submission_id = _submission(seed, filename='空".py')
    response = client.get(f"/dashboard/submissions/{submission_id}/file")
    assert response.status_code == 200
    encoded = response.headers["content-disposition"].split("filename*=UTF-8''", 1)[1]
    assert unquote(encoded) == f'submission-{submission_id}-空".py'
