"""No upload is lost to a check that fails for a reason other than the file (issue 11: one in 200 answered 500
under a burst and was never stored)."""

from __future__ import annotations

import threading
import types

from sqlalchemy import select

from grader.services import submissions
from grader.services.submissions import python_text
from grader.store.db import session_scope
from grader.store.models import GradingRun, Submission
from tests.factories import good_source


def test_a_parser_failure_that_is_not_the_files_fault_still_stores_the_upload(client, world, monkeypatch):
    """CPython 3.11's parser raised `SystemError: AST constructor recursion depth mismatch` when called from several
    request threads at once. The race cannot be produced on demand, so a stand-in parser raises that error here:
    the file is fine, so the upload is stored and queued (the sandbox reports syntax errors itself)."""
    source = good_source("parser-trouble")

    def broken_parse(*args, **kwargs):
        raise SystemError("AST constructor recursion depth mismatch (before=62, after=61)")

    monkeypatch.setattr(submissions, "symtable", types.SimpleNamespace(symtable=broken_parse))
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


def test_hidden_checks_shown_to_staff_always_to_students_after_the_due_date_or_never(client, world):
    """Full details are stored; an "after_due_date" check is released when the due date passes, a "hidden" one
    never is, and neither's name (which spells out its case) reaches a student before release."""
    from datetime import timedelta

    from grader.result import GradingResult
    from grader.store import runs as run_store
    from grader.store.models import Assignment, utcnow
    from tests.service_fixtures import submit

    accepted = submit(client, world, "alice", good_source("hidden"))
    with session_scope() as db:
        claim = run_store.claim_run(db, accepted["run_id"], "test")
    tests = [{"name": "conv2d.forward.k5_stride2_pad1_odd", "stage": "correctness", "score": 0.0, "max_score": 1.0,
              "status": "failed", "visibility": "hidden", "output": "Conv2D(3, 4, kernel_size=5) on x (2, 3, 9, 9): "
                                                                       "max abs error 0.5"},
             {"name": "maxpool2d.backward.ties_k2", "stage": "correctness", "score": 1.0, "max_score": 1.0,
              "status": "passed", "visibility": "after_due_date", "output": "MaxPool2D(2) on x (1, 1, 4, 4) ties"},
             {"name": "flatten.forward.basic", "stage": "correctness", "score": 1.0, "max_score": 1.0,
              "status": "passed", "visibility": "visible", "output": "Flatten() on x (2, 3, 4, 4)"}]
    result = {"score": 2.0, "max_score": 3.0, "status": "graded", "tests": tests, "stages": [
        {"name": "correctness", "score": 2.0, "max_score": 3.0, "status": "graded", "duration_s": 1.0}]}
    with session_scope() as db:
        run_store.record_stage(db, claim, GradingResult.from_json(result), None, duration_s=1.0)

    def seen(who: str) -> list[tuple[str, str]]:
        body = client.get(accepted["status_url"], headers=world.headers(who)).json()
        return [(test["name"], test["output"]) for test in body["result"]["tests"]]

    full = [(test["name"], test["output"]) for test in tests]
    assert seen("instructor") == full
    before = seen("alice")
    assert before[2] == full[2]
    assert before[0] == ("hidden check 1", "Hidden check: failed.")
    assert before[1][0] == "hidden check 2" and "after the due date" in before[1][1]
    with session_scope() as db:
        db.get(Assignment, db.get(GradingRun, accepted["run_id"]).submission.assignment_id).due_at = (
            utcnow() - timedelta(hours=1))
    after = seen("alice")
    assert after[1] == full[1] and after[2] == full[2]
    assert after[0] == ("hidden check 1", "Hidden check: failed.")  # "hidden": never released to students
