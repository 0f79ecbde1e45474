"""Every endpoint of /api/v1 and its errors, against the real Postgres and Redis (no worker: runs stay queued)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from grader.store.db import session_scope
from grader.store.models import AuditLog, GradingRun, Submission, utcnow
from tests.factories import admin_headers, good_source, make_world
from tests.service_fixtures import submit


@pytest.mark.docker  # readiness includes the sandbox engine
def test_health_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz", headers=admin_headers())
    assert ready.status_code == 200, ready.text
    assert {name for name, check in ready.json()["checks"].items() if check["ok"]} == {"database", "broker",
                                                                                        "sandbox"}
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/assignments/{slug}/submissions" in paths and "/api/v1/runs/{run_id}/verify" in paths
    assert client.get("/api/docs").status_code == 200


def test_instructor_token_from_password(client, world):
    response = client.post("/api/v1/auth/token", json={"email": world.instructor_email,
                                                       "password": world.instructor_password})
    assert response.status_code == 201
    token = response.json()["token"]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["role"] == "instructor"
    wrong = client.post("/api/v1/auth/token", json={"email": world.instructor_email, "password": "nope"})
    assert wrong.status_code == 401 and "detail" in wrong.json()
    student = client.post("/api/v1/auth/token", json={"email": "alice@example.edu", "password": ""})
    assert student.status_code == 401


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic abc", "Bearer "])
def test_wrong_token_is_401(client, world, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get(f"/api/v1/assignments/{world.assignment}", headers=headers)
    assert response.status_code == 401
    assert "token" in response.json()["detail"].lower()


def test_course_roster_and_assignment_creation(client, world):
    headers = world.headers("instructor")
    created = client.post("/api/v1/courses", json={"slug": "cnn-202", "title": "CNN 202"}, headers=headers)
    assert created.status_code == 201
    assert client.post("/api/v1/courses", json={"slug": "cnn-202", "title": "again"}, headers=headers).status_code == 409
    assert client.post("/api/v1/courses", json={"slug": "Bad Slug!", "title": "x"}, headers=headers).status_code == 422
    roster = "email,name,student_number\ncarol@example.edu,Carol,s3\nalice@example.edu,Alice,s1\n"
    imported = client.post("/api/v1/courses/cnn-202/roster", headers=headers,
                           files={"file": ("roster.csv", roster.encode())}).json()
    assert (imported["created"], imported["existing"]) == (1, 1)
    carol = next(s for s in imported["students"] if s["email"] == "carol@example.edu")
    alice = next(s for s in imported["students"] if s["email"] == "alice@example.edu")
    assert carol["token"].startswith("gt_") and alice["token"] is None
    carol_headers = {"Authorization": f"Bearer {carol['token']}"}
    assert [c["slug"] for c in client.get("/api/v1/courses", headers=carol_headers).json()] == ["cnn-202"]
    assert client.get("/api/v1/courses/cnn-202", headers=carol_headers).json()["title"] == "CNN 202"
    assert client.get(f"/api/v1/courses/{world.course}", headers=carol_headers).status_code == 404
    emails = {e["email"] for e in client.get("/api/v1/courses/cnn-202/roster", headers=headers).json()}
    assert emails == {"prof@example.edu", "carol@example.edu", "alice@example.edu"}
    bad = client.post("/api/v1/courses/cnn-202/roster", headers=headers, files={"file": ("r.csv", b"name\nx\n")})
    assert bad.status_code == 422 and "email" in bad.json()["detail"]

    body = {"slug": "hw-quick", "title": "Quick", "stages": ["correctness"], "pass_mark": 0.5,
            "due_at": (utcnow() + timedelta(days=3)).isoformat()}
    assignment = client.post("/api/v1/courses/cnn-202/assignments", json=body, headers=headers)
    assert assignment.status_code == 201, assignment.text
    data = assignment.json()
    assert data["stages"] == ["correctness"] and data["pass_mark"] == pytest.approx(0.5 * data["max_score"])
    assert client.post("/api/v1/courses/cnn-202/assignments", json=body, headers=headers).status_code == 409
    broken = client.post("/api/v1/courses/cnn-202/assignments", headers=headers,
                         json={"slug": "hw-bad", "title": "Bad", "spec_toml": "not = [toml"})
    assert broken.status_code == 422
    listed = client.get("/api/v1/courses/cnn-202/assignments", headers=carol_headers).json()
    assert [a["slug"] for a in listed] == ["hw-quick"]
    student_view = client.get("/api/v1/assignments/hw-quick", headers=carol_headers).json()
    assert {"pass_mark", "max_score", "due_at"} <= set(student_view) and "spec_toml" not in student_view
    assert "spec_toml" in client.get("/api/v1/assignments/hw-quick", headers=headers).json()
    patched = client.patch("/api/v1/assignments/hw-quick", json={"daily_submission_limit": 3}, headers=headers)
    assert patched.json()["daily_submission_limit"] == 3


def test_submission_is_stored_then_queued(client, world):
    accepted = submit(client, world, repo="https://github.com/alice/cnn", commit="abc123")
    assert accepted["status"] == "queued" and accepted["queue_position"] == 1
    assert accepted["status_url"] == f"/api/v1/submissions/{accepted['submission_id']}"
    second = submit(client, world, "bob", good_source("bob"))
    assert second["queue_position"] == 2
    view = client.get(accepted["status_url"], headers=world.headers("alice")).json()
    assert {"id", "assignment", "status", "score", "max_score", "result", "queue_position", "estimated_start",
            "late", "created_at", "runs"} <= set(view)
    assert view["status"] == "queued" and view["result"] is None and view["late"] is False
    assert view["repo"] == "https://github.com/alice/cnn" and view["commit"] == "abc123"
    import redis

    from tests.service_fixtures import REDIS_URL

    assert redis.Redis.from_url(REDIS_URL).llen("correctness") == 2  # published after commit, ids only
    mine = client.get(f"/api/v1/assignments/{world.assignment}/submissions", headers=world.headers("alice")).json()
    assert [s["id"] for s in mine] == [accepted["submission_id"]]
    everyone = client.get(f"/api/v1/assignments/{world.assignment}/submissions",
                          headers=world.headers("instructor")).json()
    assert len(everyone) == 2
    file = client.get(f"{accepted['status_url']}/file", headers=world.headers("alice"))
    assert file.content == good_source() and file.headers["content-type"].startswith("text/x-python")


def test_upload_errors(client, world, service_env):
    url = f"/api/v1/assignments/{world.assignment}/submissions"
    headers = world.headers("alice")
    big = b"x = 1\n" * 50_000
    assert client.post(url, headers=headers, files={"file": ("spatial.py", big)}).status_code == 413
    for content, words in ((b"\x89PNG\r\n\x1a\n\x00\x00", "binary"), (b"\xff\xfe caf\xe9", "UTF-8"),
                           (b"def f(:\n", "line 1"), (b"   \n", "empty")):
        response = client.post(url, headers=headers, files={"file": ("spatial.py", content)})
        assert response.status_code == 422 and words in response.json()["detail"], response.text
    missing = client.post(url, headers=headers)
    assert missing.status_code == 422 and "file" in missing.json()["detail"]
    assert client.post("/api/v1/assignments/nope/submissions", headers=headers,
                       files={"file": ("spatial.py", good_source())}).status_code == 404
    with session_scope() as db:
        assert db.scalar(select(func.count(Submission.id))) == 0


def test_daily_limit_is_429_with_reset_time(client, clean_db):
    world = make_world(daily_limit=2)
    submit(client, world, source=good_source("1"))
    submit(client, world, source=good_source("2"))
    response = client.post(f"/api/v1/assignments/{world.assignment}/submissions", headers=world.headers("alice"),
                           files={"file": ("spatial.py", good_source("3"))})
    assert response.status_code == 429
    assert "resets at" in response.json()["detail"] and int(response.headers["Retry-After"]) > 0
    submit(client, world, "bob")  # the limit is per student


def test_lateness_is_judged_by_upload_time(client, clean_db):
    world = make_world(due_at=utcnow() - timedelta(hours=30))
    accepted = submit(client, world)
    view = client.get(accepted["status_url"], headers=world.headers("alice")).json()
    assert view["late"] is True and view["late_days"] == 2


def test_authorization_matrix(client, world):
    alice_sub = submit(client, world, "alice")["submission_id"]
    with session_scope() as db:
        alice_run = db.scalar(select(GradingRun.id))
    alice, bob, prof = world.headers("alice"), world.headers("bob"), world.headers("instructor")
    own = [("get", f"/api/v1/submissions/{alice_sub}"), ("get", f"/api/v1/submissions/{alice_sub}/file"),
           ("get", f"/api/v1/runs/{alice_run}"), ("get", f"/api/v1/runs/{alice_run}/verify")]
    for method, url in own:
        assert client.request(method, url, headers=alice).status_code == 200, url
        assert client.request(method, url, headers=prof).status_code == 200, url
        response = client.request(method, url, headers=bob)
        assert response.status_code == 404, url  # someone else's: exactly like a missing one
        assert response.json() == client.request(method, url.replace(str(alice_sub), "999999").replace(
            f"runs/{alice_run}", "runs/999999"), headers=bob).json() | {"detail": response.json()["detail"]}
    staff_only = [("post", f"/api/v1/submissions/{alice_sub}/regrade", None),
                  ("post", f"/api/v1/submissions/{alice_sub}/override", {"score": 1, "reason": "because"}),
                  ("post", f"/api/v1/assignments/{world.assignment}/regrade", None),
                  ("get", f"/api/v1/assignments/{world.assignment}/grades.csv", None),
                  ("get", "/api/v1/runs", None), ("get", "/api/v1/audit", None),
                  ("post", "/api/v1/courses", {"slug": "x", "title": "x"}),
                  ("get", f"/api/v1/courses/{world.course}/roster", None),
                  ("patch", f"/api/v1/assignments/{world.assignment}", {"title": "x"})]
    for method, url, body in staff_only:
        assert client.request(method, url, headers=alice, json=body).status_code == 403, url
        # Bob may not even see Alice's submission: acting on it is a 404, as if it did not exist.
        expected = 404 if f"/submissions/{alice_sub}/" in url else 403
        assert client.request(method, url, headers=bob, json=body).status_code == expected, url
    bob_list = client.get(f"/api/v1/assignments/{world.assignment}/submissions", headers=bob).json()
    assert bob_list == []


def test_outsider_sees_no_course(client, world):
    from grader.store import credentials
    from grader.store.models import User

    with session_scope() as db:
        outsider = User(email="eve@example.edu", role="student")
        db.add(outsider)
        db.flush()
        token = credentials.issue_api_token(db, outsider)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(f"/api/v1/assignments/{world.assignment}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/courses/{world.course}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/assignments/{world.assignment}/submissions", headers=headers,
                       files={"file": ("spatial.py", good_source())}).status_code == 404


def _finish_run(run_id: int, score: float, max_score: float = 61.5) -> None:
    """Stand in for a worker: finish a run through the store's own claim/record path."""
    from grader.result import GradingResult
    from grader.store import runs as run_store

    with session_scope() as db:
        claim = run_store.claim_run(db, run_id, "test")
    result = {"score": score, "max_score": max_score, "status": "graded", "grader_version": "test",
              "stages": [{"name": "correctness", "score": score, "max_score": max_score, "status": "graded",
                          "duration_s": 1.0, "message": "", "details": {}}],
              "tests": [{"name": "conv2d.forward.hidden_case", "stage": "correctness", "score": score,
                         "max_score": max_score, "status": "passed", "visibility": "hidden",
                         "output": "secret input shape"}]}
    with session_scope() as db:
        assert run_store.record_stage(db, claim, GradingResult.from_json(result), None, duration_s=1.0) is None


def test_result_signing_export_regrade_override_audit(client, world):
    prof = world.headers("instructor")
    first = submit(client, world, "alice", good_source("a1"))
    second = submit(client, world, "alice", good_source("a2"))
    _finish_run(first["run_id"], 50.0)
    _finish_run(second["run_id"], 40.0)
    view = client.get(first["status_url"], headers=world.headers("alice")).json()
    assert view["status"] == "graded" and view["score"] == 50.0 and view["passed"] is True
    assert view["result"]["tests"][0]["output"] != "secret input shape"  # hidden until the due date
    assert client.get(first["status_url"], headers=prof).json()["result"]["tests"][0]["output"] == "secret input shape"
    verify = client.get(f"/api/v1/runs/{first['run_id']}/verify", headers=world.headers("alice")).json()
    assert verify["valid"] is True and verify["signed_fields"]["score"] == 50.0

    def grades(policy: str) -> dict[str, dict]:
        text = client.get(f"/api/v1/assignments/{world.assignment}/grades.csv?policy={policy}", headers=prof).text
        return {row["email"]: row for row in csv.DictReader(io.StringIO(text))}

    assert grades("best")["alice@example.edu"]["score"] == "50.00"
    assert grades("latest")["alice@example.edu"]["score"] == "40.00"
    assert grades("best")["bob@example.edu"]["score"] == ""  # one row per enrolled student

    with session_scope() as db:  # a tampered score no longer verifies and is left out of the export
        db.get(GradingRun, first["run_id"]).score = 61.5
    assert client.get(f"/api/v1/runs/{first['run_id']}/verify", headers=prof).json()["valid"] is False
    assert grades("best")["alice@example.edu"]["score"] == "40.00"
    with session_scope() as db:
        db.get(GradingRun, first["run_id"]).score = 50.0

    regrade = client.post(f"/api/v1/submissions/{second['submission_id']}/regrade", headers=prof)
    assert regrade.status_code == 202
    _finish_run(regrade.json()["run_id"], 45.0)
    override = client.post(f"/api/v1/submissions/{first['submission_id']}/override", headers=prof,
                           json={"score": 55, "reason": "manual review of the pooling ties"})
    assert override.status_code == 201 and override.json()["score"] == 55.0
    assert grades("best")["alice@example.edu"]["score"] == "55.00"
    audit = client.get("/api/v1/audit", headers=prof).json()
    assert audit["chain_valid"] is True
    assert [(e["action"], e["data"]["old_score"], e["data"]["new_score"]) for e in reversed(audit["entries"])] == [
        ("regrade", 40.0, 45.0), ("override", 50.0, 55.0)]
    with pytest.raises(Exception, match="append-only"), session_scope() as db:
        db.get(AuditLog, 1).action = "tampered"


def test_regrade_whole_assignment_preview_then_apply(client, world):
    prof = world.headers("instructor")
    alice = submit(client, world, "alice", good_source("a"))
    bob = submit(client, world, "bob", good_source("b"))
    _finish_run(alice["run_id"], 50.0)
    _finish_run(bob["run_id"], 30.0)
    batch = client.post(f"/api/v1/assignments/{world.assignment}/regrade", headers=prof)
    assert batch.status_code == 202 and batch.json()["runs"] == 2
    preview_url = batch.json()["preview_url"]
    assert client.post(f"{preview_url}/apply", headers=prof).status_code == 409  # not finished yet
    with session_scope() as db:
        preview_runs = {r.submission_id: r.id for r in db.scalars(select(GradingRun).where(
            GradingRun.batch_id == batch.json()["batch_id"]))}
    _finish_run(preview_runs[alice["submission_id"]], 50.0)
    _finish_run(preview_runs[bob["submission_id"]], 35.0)
    preview = client.get(preview_url, headers=prof).json()
    assert preview["ready"] and not preview["applied"]
    assert [(c["user_email"], c["old_score"], c["new_score"], c["delta"]) for c in preview["changes"]] == [
        ("bob@example.edu", 30.0, 35.0, 5.0)]
    # Until applied, students still see their old scores.
    assert client.get(bob["status_url"], headers=world.headers("bob")).json()["score"] == 30.0
    applied = client.post(f"{preview_url}/apply", headers=prof)
    assert applied.status_code == 200 and applied.json()["applied"] is True
    assert client.get(bob["status_url"], headers=world.headers("bob")).json()["score"] == 35.0
    assert client.post(f"{preview_url}/apply", headers=prof).status_code == 409
    entries = client.get("/api/v1/audit", headers=prof).json()["entries"]
    assert [(e["action"], e["entity_id"]) for e in entries] == [("regrade", bob["submission_id"])]


def test_identical_resubmission_reuses_the_signed_result(client, world):
    first = submit(client, world, "alice", good_source("same"))
    _finish_run(first["run_id"], 61.5)
    again = submit(client, world, "alice", good_source("same"))
    assert again["reused"] is True and again["status"] == "graded"
    view = client.get(again["status_url"], headers=world.headers("alice")).json()
    assert view["score"] == 61.5 and view["runs"][0]["reused_from_run_id"] == first["run_id"]
    assert client.get(f"/api/v1/runs/{again['run_id']}/verify", headers=world.headers("alice")).json()["valid"]


def test_events_stream_and_badges_and_metrics(client, world):
    accepted = submit(client, world)
    _finish_run(accepted["run_id"], 61.5)
    with client.stream("GET", f"{accepted['status_url']}/events", headers=world.headers("alice")) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        body = "".join(stream.iter_text())
    kinds = [line.split(": ", 1)[1] for line in body.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "status" and kinds[-1] == "done" and kinds.count("done") == 1
    # `done` carries the submission as a status read answers it (the client reads no status after it), hidden
    # checks withheld from the student alike.
    done = json.loads(body.split("event: done")[1].split("data: ", 1)[1].splitlines()[0])
    status_read = client.get(accepted["status_url"], headers=world.headers("alice")).json()
    assert done == {**status_read, "submission_id": accepted["submission_id"]} and done["score"] == 61.5
    assert "secret input shape" not in body
    assert client.get(f"{accepted['status_url']}/events", headers=world.headers("bob")).status_code == 404
    badges = client.get("/api/v1/me/badges", headers=world.headers("alice")).json()
    assert badges[0]["assignment"] == world.assignment and badges[0]["badge_url"].endswith(".svg")
    metrics = client.get("/metrics", headers=admin_headers()).text
    assert 'grader_runs{status="graded"} 1' in metrics and 'grader_queue_depth{queue="correctness"} 0' in metrics
    assert 'grader_stage_duration_seconds_count{stage="correctness"} 1' in metrics
    runs = client.get("/api/v1/runs?status=graded", headers=world.headers("instructor")).json()
    assert [r["id"] for r in runs] == [accepted["run_id"]]


def test_readyz_is_503_when_the_broker_is_unreachable(client, service_env):
    from tests.service_fixtures import apply_environment

    try:
        apply_environment({**service_env, "BROKER_URL": "redis://127.0.0.1:9/0"})  # nothing listens on port 9
        response = client.get("/readyz", headers=admin_headers())
    finally:
        apply_environment(service_env)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"]["ok"] is False and checks["database"]["ok"] is True


@pytest.mark.parametrize("method, url", [
    ("GET", "/api/v1/submissions/99999999999"), ("GET", "/api/v1/runs/2147483648/verify"),
    ("POST", "/api/v1/assignments/spatial-hw/badges/99999999999/rotate"), ("GET", "/api/v1/runs?status=%00"),
    ("GET", "/api/v1/assignments/a%00b"), ("GET", "/api/v1/courses/a%00b/roster"), ("GET", "/badges/a%00b.svg"),
    ("GET", "/api/v1/runs?assignment=%00&batch_id=%00")])
def test_unstorable_input_is_422_not_500(client, world, method, url):
    """Ids beyond Postgres `integer` and text with NUL bytes (found by fuzzing) are the caller's error."""
    response = client.request(method, url, headers=world.headers("instructor"))
    assert response.status_code == 422 and "detail" in response.json(), response.text


def test_done_reads_the_finished_submission_in_two_queries(client, world):
    """The `done` of every followed grade: the viewer, then the submission with its assignment, course, runs and
    the viewer's role in one query (it was seven, one lazy load each)."""
    from sqlalchemy import event

    from api.routes import submissions as submission_routes
    from grader.store.db import get_engine

    accepted = submit(client, world)
    _finish_run(accepted["run_id"], 61.5)
    statements: list[str] = []
    engine = get_engine()
    listener = lambda *args: statements.append(args[2])  # noqa: E731  (before_cursor_execute: the statement)
    event.listen(engine, "before_cursor_execute", listener)
    try:
        with session_scope() as db:
            viewer_id = db.get(Submission, accepted["submission_id"]).user_id
        statements.clear()
        done = json.loads(submission_routes._final_state(
            submission_routes._StreamFor(accepted["submission_id"], viewer_id, False, False)))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert len(statements) == 2, statements
    assert done["submission_id"] == accepted["submission_id"] and done["score"] == 61.5 and done["runs"]
