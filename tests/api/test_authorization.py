"""Who gets what, generated from the app's own route table: every route (API, dashboard, badges, health) x every
kind of caller, with the status each must get. A route added without an entry in EXPECTED fails
`test_every_route_has_an_entry`, so nobody adds an endpoint without deciding who may call it.

Callers: anonymous; Alice, a student of course A who owns the submission and run in the paths; Bob, another
student of course A; Tina, a TA of course A; the instructor of course A; Olga, instructor of course B only; a site
admin enrolled nowhere. API calls carry the caller's bearer token; dashboard calls the caller's session (staff log
in with their password; students cannot log in, so theirs is a session cookie made with the server's key, to show
that pages check the user and not only the login form). Real Postgres and Redis (tests/service_fixtures.py).
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.api.course_world import CALLERS, PASSWORD, Matrix, build_world, truncate
from tests.factories import good_source
from tests.service_fixtures import apply_environment

LOGIN = "login"  # a 303 to the login page
SAME = "same"  # public: the same status for every caller, never a 5xx (e.g. /readyz depends on the engine)


def row(*statuses) -> dict[str, int | str]:
    assert len(statuses) == len(CALLERS)
    return dict(zip(CALLERS, statuses))


PUBLIC = row(*[200] * 7)
# anonymous, student, other_student, ta, instructor, other_instructor, admin
COURSE_MEMBERS = row(401, 200, 200, 200, 200, 404, 200)
OWNER_AND_STAFF = row(401, 200, 404, 200, 200, 404, 200)
STAFF_READ = row(401, 403, 403, 200, 200, 404, 200)
INSTRUCTOR_ONLY = row(401, 403, 403, 403, 200, 404, 200)
STAFF_ANYWHERE = row(401, 403, 403, 200, 200, 200, 200)  # lists scoped to the caller's courses
DASHBOARD_STAFF = row(LOGIN, LOGIN, LOGIN, 200, 200, 404, 200)
STUDENT_PAGE = row(303, 200, 200, 200, 200, 200, 200)  # 303: to the student sign-in form
STUDENT_COURSE_PAGE = row(303, 200, 200, 200, 200, 404, 200)
STUDENT_OWN_PAGE = row(303, 200, 404, 200, 200, 404, 200)
DASHBOARD_INSTRUCTOR_FORM = row(LOGIN, LOGIN, LOGIN, 403, 303, 404, 303)

EXPECTED: dict[tuple[str, str], dict[str, int | str]] = {
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("POST", "/api/v1/auth/token"): row(401, 401, 401, 201, 201, 201, 201),  # students have no password
    ("GET", "/api/v1/me"): row(401, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/me/badges"): row(401, 200, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/courses"): row(401, 403, 403, 403, 201, 201, 201),  # TA's account is a student account
    ("GET", "/api/v1/courses"): row(401, 200, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/courses/{slug}"): COURSE_MEMBERS,
    ("PATCH", "/api/v1/courses/{slug}"): INSTRUCTOR_ONLY,
    ("POST", "/api/v1/courses/{slug}/roster"): INSTRUCTOR_ONLY,
    ("GET", "/api/v1/courses/{slug}/roster"): STAFF_READ,
    ("POST", "/api/v1/courses/{slug}/assignments"): row(401, 403, 403, 403, 201, 404, 201),
    ("GET", "/api/v1/courses/{slug}/assignments"): COURSE_MEMBERS,
    ("GET", "/api/v1/assignments/{slug}"): COURSE_MEMBERS,
    ("PATCH", "/api/v1/assignments/{slug}"): INSTRUCTOR_ONLY,
    ("POST", "/api/v1/courses/{slug}/kits"): row(401, 403, 403, 403, 201, 404, 201),
    # An empty solution: refused (422) before any sandbox runs; the self-test itself is in test_api_kits.py.
    ("POST", "/api/v1/assignments/{slug}/self-test"): row(401, 403, 403, 403, 422, 404, 422),
    ("POST", "/api/v1/assignments/{slug}/submissions"): row(401, 202, 202, 202, 202, 404, 202),
    ("GET", "/api/v1/assignments/{slug}/submissions"): COURSE_MEMBERS,
    ("GET", "/api/v1/assignments/{slug}/grades.csv"): STAFF_READ,
    ("POST", "/api/v1/assignments/{slug}/regrade"): row(401, 403, 403, 202, 202, 404, 202),
    ("GET", "/api/v1/assignments/{slug}/regrades/{batch_id}"): STAFF_READ,
    ("POST", "/api/v1/assignments/{slug}/regrades/{batch_id}/apply"): STAFF_READ,
    ("POST", "/api/v1/assignments/{slug}/badges/{user_id}/rotate"): STAFF_READ,
    ("GET", "/api/v1/submissions/{submission_id}"): OWNER_AND_STAFF,
    ("GET", "/api/v1/submissions/{submission_id}/file"): OWNER_AND_STAFF,
    ("GET", "/api/v1/submissions/{submission_id}/events"): OWNER_AND_STAFF,
    ("POST", "/api/v1/submissions/{submission_id}/regrade"): row(401, 403, 404, 202, 202, 404, 202),
    # Course A does not let its TAs override (test_ta_overrides_where_the_course_allows_it covers the other case).
    ("POST", "/api/v1/submissions/{submission_id}/override"): row(401, 403, 404, 403, 201, 404, 201),
    ("GET", "/api/v1/runs"): STAFF_ANYWHERE,
    ("GET", "/api/v1/runs/{run_id}"): OWNER_AND_STAFF,
    ("GET", "/api/v1/runs/{run_id}/verify"): OWNER_AND_STAFF,
    ("GET", "/api/v1/audit"): STAFF_ANYWHERE,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): row(*[SAME] * 7),
    ("GET", "/metrics"): row(401, 403, 403, 403, 403, 403, 200),  # admins only (HEALTH_DETAILS_PUBLIC opens it)
    ("GET", "/badges/{badge_token}.svg"): PUBLIC,
    ("GET", "/badges/{badge_token}.json"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): row(401, 401, 401, 303, 303, 303, 303),
    ("POST", "/logout"): row(*[LOGIN] * 7),  # logged out, to the login page
    ("GET", "/"): row(*[303] * 7),
    ("GET", "/dashboard"): row(LOGIN, LOGIN, LOGIN, 200, 200, 200, 200),
    ("GET", "/dashboard/live.json"): row(LOGIN, LOGIN, LOGIN, 200, 200, 200, 200),
    ("GET", "/dashboard/courses/{slug}"): DASHBOARD_STAFF,
    ("POST", "/dashboard/courses/{slug}/assignments"): row(LOGIN, LOGIN, LOGIN, 403, 303, 404, 303),
    ("POST", "/dashboard/courses/{slug}/roster"): row(LOGIN, LOGIN, LOGIN, 403, 200, 404, 200),
    ("POST", "/dashboard/courses/{slug}/kits"): row(LOGIN, LOGIN, LOGIN, 403, 303, 404, 303),
    ("GET", "/dashboard/assignments/{slug}"): DASHBOARD_STAFF,
    ("GET", "/dashboard/assignments/{slug}/live.json"): DASHBOARD_STAFF,
    ("GET", "/dashboard/assignments/{slug}/charts/{name}.svg"): DASHBOARD_STAFF,
    ("GET", "/dashboard/assignments/{slug}/grades.csv"): DASHBOARD_STAFF,
    ("POST", "/dashboard/assignments/{slug}/regrade"): row(LOGIN, LOGIN, LOGIN, 303, 303, 404, 303),
    ("GET", "/dashboard/assignments/{slug}/regrade/{batch_id}"): DASHBOARD_STAFF,
    ("GET", "/dashboard/assignments/{slug}/regrade/{batch_id}/live.json"): DASHBOARD_STAFF,
    ("POST", "/dashboard/assignments/{slug}/regrade/{batch_id}/confirm"): row(LOGIN, LOGIN, LOGIN, 303, 303, 404,
                                                                              303),
    ("POST", "/dashboard/assignments/{slug}/badges/{user_id}/rotate"): row(LOGIN, LOGIN, LOGIN, 303, 303, 404, 303),
    ("GET", "/dashboard/submissions/{submission_id}"): DASHBOARD_STAFF,
    ("GET", "/dashboard/submissions/{submission_id}/file"): DASHBOARD_STAFF,
    ("GET", "/dashboard/submissions/{submission_id}/live.json"): DASHBOARD_STAFF,
    ("GET", "/dashboard/submissions/{submission_id}/runs/{run_id}/curve.svg"): DASHBOARD_STAFF,
    ("POST", "/dashboard/submissions/{submission_id}/regrade"): row(LOGIN, LOGIN, LOGIN, 303, 303, 404, 303),
    ("GET", "/student"): PUBLIC,
    ("POST", "/student"): row(401, 200, 200, 200, 200, 200, 200),  # the form takes the caller's API token
    ("GET", "/student/login"): PUBLIC,
    ("POST", "/student/login"): row(401, 303, 303, 303, 303, 303, 303),  # with the caller's API token
    ("POST", "/student/logout"): row(303, 303, 303, 303, 303, 303, 303),
    ("POST", "/student/password"): row(303, 303, 303, 303, 303, 303, 303),  # 303 with what happened as a notice
    ("GET", "/student/home"): STUDENT_PAGE,
    ("GET", "/student/assignments/{slug}"): STUDENT_COURSE_PAGE,
    ("POST", "/student/assignments/{slug}/submit"): row(303, 303, 303, 303, 303, 404, 303),
    ("GET", "/student/submissions/{submission_id}"): STUDENT_OWN_PAGE,
    ("GET", "/student/submissions/{submission_id}/live.json"): STUDENT_OWN_PAGE,
    ("GET", "/student/submissions/{submission_id}/runs/{run_id}/curve.svg"): STUDENT_OWN_PAGE,
    ("GET", "/dashboard/assignments/{slug}/extensions"): DASHBOARD_STAFF,
    ("POST", "/dashboard/assignments/{slug}/extensions"): DASHBOARD_INSTRUCTOR_FORM,
    ("POST", "/dashboard/assignments/{slug}/late-days"): DASHBOARD_INSTRUCTOR_FORM,
    ("POST", "/dashboard/assignments/{slug}/deadline"): DASHBOARD_INSTRUCTOR_FORM,
    ("GET", "/dashboard/assignments/{slug}/similarity"): DASHBOARD_STAFF,
    ("POST", "/dashboard/assignments/{slug}/similarity"): row(LOGIN, LOGIN, LOGIN, 303, 303, 404, 303),
    ("GET", "/dashboard/assignments/{slug}/similarity/live.json"): DASHBOARD_STAFF,
    # No report exists in this world: staff get 404 for the pair, everyone else what they get for the report.
    ("GET", "/dashboard/assignments/{slug}/similarity/{report_id}/pairs/{rank}"): row(LOGIN, LOGIN, LOGIN, 404, 404,
                                                                                      404, 404),
    # The leaderboard is off in this world: 404 to everyone who may see the course (it does not exist).
    ("GET", "/student/assignments/{slug}/leaderboard"): row(303, 404, 404, 404, 404, 404, 404),
    ("GET", "/student/assignments/{slug}/leaderboard.json"): row(303, 404, 404, 404, 404, 404, 404),
    ("POST", "/student/assignments/{slug}/leaderboard/name"): row(303, 303, 303, 303, 303, 404, 303),
    ("POST", "/dashboard/assignments/{slug}/leaderboard"): DASHBOARD_INSTRUCTOR_FORM,
    ("GET", "/static/dashboard/{name}"): PUBLIC,
    ("GET", "/client/grader_submit.py"): PUBLIC,
}


def route_table(app) -> set[tuple[str, str]]:
    return {(method, route.path) for route in app.routes for method in (getattr(route, "methods", None) or ())
            if method != "HEAD"}


def _csrf_of(client: TestClient) -> str:
    page = client.get("/login").text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _session_cookie(user_id: int, csrf: str) -> str:
    from api.web import security

    return security._serializer().dumps({"u": user_id, "c": csrf, "v": 0})


def open_sessions(matrix: Matrix, app) -> None:
    """A client per caller: staff logged in with their password, students with a made session, anonymous none."""
    from api.web.security import COOKIE_NAME

    for caller in CALLERS:
        client = TestClient(app, base_url="http://testserver", follow_redirects=False)
        client.__enter__()
        if caller in ("student", "other_student"):
            client.cookies.set(COOKIE_NAME, _session_cookie(matrix.user_ids[caller], "made-" + caller))
        elif caller != "anonymous":
            response = client.post("/login", data={"email": matrix.emails[caller], "password": PASSWORD,
                                                   "csrf_token": _csrf_of(client)})
            assert response.status_code == 303, (caller, response.text[:300])
        matrix.clients[caller] = client
        matrix.csrf[caller] = _csrf_of(client)


@pytest.fixture(scope="module")
def matrix(service_env):
    from api.main import create_app

    apply_environment(service_env)
    truncate()
    world = Matrix()
    build_world(world)
    open_sessions(world, create_app())
    yield world
    for client in world.clients.values():
        client.__exit__(None, None, None)
    truncate()


def _path(matrix: Matrix, caller: str, template: str) -> str:
    kind = "dashboard" if template.startswith("/dashboard") else "api"
    slug = matrix.course if "/courses/{slug}" in template else matrix.assignment
    name = "scores" if "/charts/" in template else "dashboard.css"
    values = {"slug": slug, "submission_id": matrix.submission_id, "run_id": matrix.run_id,
              "batch_id": matrix.batches[(kind, caller)], "user_id": matrix.user_ids["student"],
              "badge_token": matrix.badge_token, "name": name, "report_id": 1, "rank": 1}
    return re.sub(r"\{(\w+)\}", lambda match: str(values[match.group(1)]), template)


def _body(matrix: Matrix, caller: str, method: str, template: str) -> dict:
    """What the request carries besides the caller's credentials: a valid body, a CSRF token for forms."""
    tag = caller.replace("_", "-")
    if template == "/api/v1/auth/token":
        password = PASSWORD if caller != "anonymous" else "wrong"
        return {"json": {"email": matrix.emails.get(caller, "nobody@example.edu"), "password": password}}
    bodies = {
        "/api/v1/courses": {"json": {"slug": f"new-{tag}", "title": "New"}},
        "/api/v1/courses/{slug}/roster": {"files": {"file": ("roster.csv", b"email,name\ncarol@example.edu,C\n")}},
        "/api/v1/courses/{slug}/assignments": {"json": {"slug": f"api-{tag}", "title": "T",
                                                        "stages": ["correctness"]}},
        "/api/v1/assignments/{slug}": {"json": {"title": "Renamed"}},
        "/api/v1/courses/{slug}": {"json": {"title": "Course A, renamed"}},
        "/api/v1/assignments/{slug}/submissions": {"files": {"file": ("spatial.py", good_source(tag))}},
        "/api/v1/submissions/{submission_id}/override": {"json": {"score": 30, "reason": "manual review"}},
        "/api/v1/courses/{slug}/kits": {"files": {"file": ("tinytorch.tar.gz", _kit_archive())}},
        "/api/v1/assignments/{slug}/self-test": {"files": {"file": ("spatial.py", b"")}},
    }
    body = bodies.get(template, {})
    if template.startswith(("/dashboard", "/login", "/logout", "/student")) and method == "POST":
        data = {"csrf_token": matrix.csrf[caller]}
        if template == "/login":
            data.update(email=matrix.emails.get(caller, "nobody@example.edu"),
                        password=PASSWORD if caller != "anonymous" else "wrong")
        elif template in ("/student", "/student/login", "/student/password"):
            data["token"] = matrix.tokens.get(caller, "gt_not-a-token")
            if template == "/student/password":  # a wrong token: setting it would end the caller's sessions
                data.update(token="gt_not-a-token", password="long enough password")
        elif template == "/student/assignments/{slug}/submit":
            body = {"files": {"file": ("spatial.py", good_source(tag + "-page"))}}
        elif template == "/dashboard/assignments/{slug}/extensions":
            data.update(email=matrix.emails["student"], due_at="2030-01-01T00:00", reason="matrix")
        elif template == "/dashboard/assignments/{slug}/late-days":
            data.update(email=matrix.emails["student"], tokens="1")
        elif template == "/dashboard/assignments/{slug}/deadline":  # as it was: no due date, no late policy
            data.update(due_at="", penalty_percent="0", max_late_days="0")
        elif template == "/dashboard/courses/{slug}/assignments":
            data.update(slug=f"dash-{tag}", title="T")
        elif template == "/dashboard/courses/{slug}/roster":
            body = {"files": {"file": ("roster.csv", b"email,name\ndave@example.edu,D\n")}}
        elif template == "/dashboard/courses/{slug}/kits":
            body = {"files": {"file": ("tinytorch.tar.gz", _kit_archive())}}
        body = {**body, "data": data}
    return body


def _kit_archive() -> bytes:
    """The built-in kit as an upload (a .tar.gz holding tinytorch/)."""
    import io
    import tarfile
    from pathlib import Path

    kit = Path(__file__).resolve().parents[2] / "reference" / "kit"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted((kit / "tinytorch").rglob("*.py")):
            archive.add(path, arcname=str(path.relative_to(kit)))
    return buffer.getvalue()


def call(matrix: Matrix, caller: str, method: str, template: str):
    from api.web.security import COOKIE_NAME

    client = matrix.clients[caller]
    headers = {"Authorization": f"Bearer {matrix.tokens[caller]}"} if caller in matrix.tokens else {}
    if template in ("/login", "/logout", "/student/login", "/student/logout", "/student/password") and method == "POST":
        # Logging in or out replaces the session: do it on a copy, so the caller's session stays for the rest.
        with TestClient(client.app, base_url="http://testserver", follow_redirects=False) as spare:
            if COOKIE_NAME in client.cookies:
                spare.cookies.set(COOKIE_NAME, client.cookies[COOKIE_NAME])
            return spare.request(method, _path(matrix, caller, template), headers=headers,
                                 **_body(matrix, caller, method, template))
    query = "?notice=x" if template == "/dashboard" else ""  # with a notice, one course is not a redirect
    return client.request(method, _path(matrix, caller, template) + query, headers=headers,
                          **_body(matrix, caller, method, template))


def _outcome(response) -> int | str:
    if response.status_code == 303 and response.headers.get("location", "").startswith("/login"):
        return LOGIN
    return response.status_code


def test_every_route_has_an_entry():
    from api.main import create_app

    routes = route_table(create_app())
    assert sorted(routes - set(EXPECTED)) == [], "routes without an entry in EXPECTED: decide who may call them"
    assert sorted(set(EXPECTED) - routes) == [], "entries in EXPECTED for routes that no longer exist"


@pytest.mark.parametrize("method, template", sorted(EXPECTED), ids=[f"{m} {p}" for m, p in sorted(EXPECTED)])
def test_route_answers_each_caller_as_expected(matrix, method, template):
    got = {caller: _outcome(call(matrix, caller, method, template)) for caller in CALLERS}
    expected = EXPECTED[(method, template)]
    if all(value == SAME for value in expected.values()):
        assert len(set(got.values())) == 1 and all(isinstance(s, int) and s < 500 for s in got.values()), got
        return
    assert got == expected


def test_lists_show_only_the_callers_courses(matrix):
    """Olga (course B only) may list runs and the audit log, but sees nothing of course A."""
    from grader.store.db import session_scope
    from grader.store.models import AuditLog, GradingRun

    olga, prof = matrix.clients["other_instructor"], matrix.clients["instructor"]

    def get(client, caller, url):
        response = client.get(url, headers={"Authorization": f"Bearer {matrix.tokens[caller]}"})
        assert response.status_code == 200, response.text
        return response.json()

    prof_override = prof.post(f"/api/v1/submissions/{matrix.submission_id}/override",
                              headers={"Authorization": f"Bearer {matrix.tokens['instructor']}"},
                              json={"score": 35, "reason": "scoping check"})
    assert prof_override.status_code == 201
    with session_scope() as db:
        assert db.scalar(select(AuditLog.id).limit(1)) is not None
        assert db.scalar(select(GradingRun.id).limit(1)) is not None
    assert get(olga, "other_instructor", "/api/v1/runs") == []
    assert get(olga, "other_instructor", f"/api/v1/runs?assignment={matrix.assignment}") == []
    assert get(olga, "other_instructor", "/api/v1/audit")["entries"] == []
    assert get(prof, "instructor", "/api/v1/runs") != []
    assert get(prof, "instructor", "/api/v1/audit")["entries"] != []
    assert matrix.course not in {c["slug"] for c in get(olga, "other_instructor", "/api/v1/courses")}
    dashboard = olga.get("/dashboard?notice=x")
    assert dashboard.status_code == 200 and f"/dashboard/courses/{matrix.course}" not in dashboard.text
    assert f"/dashboard/courses/{matrix.course}" in matrix.clients["ta"].get("/dashboard?notice=x").text
    assert olga.get(f"/dashboard/live.json?course={matrix.course}").status_code == 404


def test_ta_overrides_where_the_course_allows_it(matrix):
    """The course's instructor lets TAs override; a TA cannot change that setting."""
    url = f"/api/v1/submissions/{matrix.submission_id}/override"
    body = {"score": 33, "reason": "the course lets TAs do this"}

    def as_(caller, method, path, payload):
        client = matrix.clients[caller]
        return client.request(method, path, headers={"Authorization": f"Bearer {matrix.tokens[caller]}"},
                              json=payload)

    course_url = f"/api/v1/courses/{matrix.course}"
    assert as_("ta", "PATCH", course_url, {"ta_may_override": True}).status_code == 403
    assert as_("instructor", "PATCH", course_url, {"ta_may_override": True}).json()["ta_may_override"] is True
    try:
        assert as_("ta", "POST", url, body).status_code == 201
    finally:
        assert as_("instructor", "PATCH", course_url, {"ta_may_override": False}).status_code == 200
    assert as_("ta", "POST", url, body).status_code == 403


def test_ta_sees_hidden_details_and_the_spec_but_students_do_not(matrix):
    def read(caller, url):
        return matrix.clients[caller].get(url, headers={"Authorization": f"Bearer {matrix.tokens[caller]}"}).json()

    assert "spec_toml" in read("ta", f"/api/v1/assignments/{matrix.assignment}")
    assert "spec_toml" not in read("student", f"/api/v1/assignments/{matrix.assignment}")
    ta_runs = {run["kind"] for run in read("ta", f"/api/v1/submissions/{matrix.submission_id}")["runs"]}
    student_runs = {run["kind"] for run in read("student", f"/api/v1/submissions/{matrix.submission_id}")["runs"]}
    assert "preview" in ta_runs and "preview" not in student_runs
