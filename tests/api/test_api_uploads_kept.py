"""No upload is lost to a check that fails for a reason other than the file (issue 11: one in 200 answered 500
under a burst and was never stored)."""

from __future__ import annotations

import threading
import types

from sqlalchemy import select

from grader.services import submissions
from grader.services.submissions import python_text
from grader.store.db import session_scope
from grader.store.models import Submission
from tests.api.service_fixtures import good_source


def test_a_parser_failure_that_is_not_the_files_fault_still_stores_the_upload(client, world, monkeypatch):
    """CPython 3.11's parser raised `SystemError: AST constructor recursion depth mismatch` when called from several
    request threads at once. The race cannot be produced on demand, so a stand-in parser raises that error here:
    the file is fine, so the upload is stored and queued (the sandbox reports syntax errors itself)."""
    source = good_source("parser-trouble")

    def broken_parse(*args, **kwargs):
        raise SystemError("AST constructor recursion depth mismatch (before=62, after=61)")

    monkeypatch.setattr(submissions, "ast", types.SimpleNamespace(parse=broken_parse))
    response = client.post(f"/api/v1/assignments/{world.assignment}/submissions", headers=world.headers("alice"),
                           files={"file": ("spatial.py", source)})
    assert response.status_code == 202, response.text
    with session_scope() as db:
        stored = db.scalar(select(Submission).where(Submission.id == response.json()["submission_id"]))
        assert stored is not None and stored.content == source


def test_the_syntax_check_survives_many_request_threads_at_once():
    """The real parser from 8 threads at once on deeply nested (valid) files: every call answers."""
    nested = ("x = " + "(" * 90 + "1" + ")" * 90 + "\n").encode() * 20 + good_source()
    errors: list[BaseException] = []

    def parse_many() -> None:
        for _ in range(40):
            try:
                python_text(nested)
            except BaseException as error:  # noqa: BLE001 - any failure is the finding
                errors.append(error)

    threads = [threading.Thread(target=parse_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
