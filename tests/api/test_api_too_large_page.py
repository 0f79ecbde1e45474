"""An upload over the body cap is a 413 either way, but a person using a dashboard or student form gets a page in
the dashboard's style that says the file is too big, what the limit is and where to go back; API clients keep the
JSON `{"detail": ...}`. Real API and Postgres (api/body_limit.py)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from api.main import create_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
TOO_BIG = b"x" * (256 * 1024 + 200 * 1024)  # the submission cap is 256 KiB (+ 64 KiB for the form around it)


def _student(world) -> tuple[TestClient, str]:
    browser = TestClient(create_app(), follow_redirects=False)
    csrf = CSRF.search(browser.get("/student/login").text).group(1)
    assert browser.post("/student/login", data={"csrf_token": csrf, "token": world.alice_token}).status_code == 303
    page = browser.get(f"/student/assignments/{world.assignment}")
    return browser, CSRF.search(page.text).group(1)


def _assert_too_large_page(response, back: str) -> None:
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "too big" in page and "at most 256 KiB" in page, page
    assert f'href="{back}"' in page and "/static/dashboard/dashboard.css" in page
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_the_student_form_gets_a_page_saying_the_file_is_too_big(world):
    browser, csrf = _student(world)
    path = f"/student/assignments/{world.assignment}/submit"
    declared = browser.post(path, data={"csrf_token": csrf}, files={"file": ("spatial.py", TOO_BIG)}, headers=BROWSER)
    _assert_too_large_page(declared, f"/student/assignments/{world.assignment}")

    def chunks():  # no Content-Length: counted as it arrives
        boundary = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"spatial.py\"\r\n\r\n"
        yield boundary
        for _ in range(8):
            yield b"x" * 65536

    chunked = browser.post(path, content=chunks(), headers={**BROWSER, "Content-Type": "multipart/form-data; boundary=b"})
    _assert_too_large_page(chunked, f"/student/assignments/{world.assignment}")


def test_api_clients_keep_json(client, world):
    upload = f"/api/v1/assignments/{world.assignment}/submissions"
    refused = client.post(upload, headers={**world.headers("alice"), **BROWSER},
                          files={"file": ("spatial.py", TOO_BIG)})
    assert refused.status_code == 413 and refused.headers["content-type"].startswith("application/json")
    assert "at most 256 KiB" in refused.json()["detail"]
    asked_for_json = client.post(f"/student/assignments/{world.assignment}/submit",
                                 headers={"Accept": "application/json"}, files={"file": ("spatial.py", TOO_BIG)})
    assert asked_for_json.status_code == 413 and "at most 256 KiB" in asked_for_json.json()["detail"]
