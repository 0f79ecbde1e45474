"""Badges: valid SVG with the right message and colour, shields.io endpoint JSON, only signed runs, rotation."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jsonschema
import pytest
from sqlalchemy import select

from api.badge_images import COLORS, Badge, render_svg, text_width
from grader.store.db import session_scope
from grader.store.models import Assignment, GradingRun, User
from tests.factories import make_submission

SVG_NS = "{http://www.w3.org/2000/svg}"

# The shields.io endpoint badge schema (https://shields.io/badges/endpoint-badge), as a JSON Schema.
SHIELDS_ENDPOINT_SCHEMA = {
    "type": "object",
    "required": ["schemaVersion", "label", "message"],
    "additionalProperties": False,
    "properties": {
        "schemaVersion": {"const": 1},
        "label": {"type": "string"},
        "message": {"type": "string", "minLength": 1},
        "color": {"type": "string"},
        "labelColor": {"type": "string"},
        "isError": {"type": "boolean"},
        "namedLogo": {"type": "string"},
        "logoSvg": {"type": "string"},
        "logoColor": {"type": "string"},
        "logoWidth": {"type": "integer"},
        "style": {"enum": ["plastic", "flat", "flat-square", "for-the-badge", "social"]},
        "cacheSeconds": {"type": "integer", "minimum": 300},
    },
}


def _svg(client, token: str, **params):
    response = client.get(f"/badges/{token}.svg", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    assert root.tag == f"{SVG_NS}svg"
    return response, root


def _texts(root) -> list[str]:
    return [node.text for node in root.iter(f"{SVG_NS}text")]


def _add(seed, **kwargs):
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == seed.assignment_slug))
        make_submission(db, assignment, db.get(User, seed.student_id), **kwargs)
        return assignment.max_score, assignment.pass_mark


def test_badge_without_submission_says_so(client, seed):
    response, root = _svg(client, seed.badge_token)
    assert _texts(root) == ["cnn-spatial", "cnn-spatial", "no submission", "no submission"]
    assert "max-age=60" in response.headers["cache-control"]
    assert root.find(f"{SVG_NS}title").text == "cnn-spatial: no submission"


def test_badge_shows_signed_score_with_colour_by_score(client, seed):
    max_score, pass_mark = _add(seed, score=61.5)
    _, root = _svg(client, seed.badge_token)
    assert _texts(root)[2] == "61.5/61.5"
    fills = [rect.get("fill") for rect in root.iter(f"{SVG_NS}rect")]
    assert COLORS["brightgreen"] in fills
    width = int(root.get("width"))
    assert width == sum(int(rect.get("width")) for rect in root.iter(f"{SVG_NS}rect")
                        if rect.get("fill") not in ("url(#s)", "#fff"))


def test_failing_score_is_red_and_status_form_says_failing(client, seed):
    _add(seed, score=5.0, failed=3)
    _, root = _svg(client, seed.badge_token)
    assert _texts(root)[2] == "5/61.5"
    assert COLORS["red"] in [rect.get("fill") for rect in root.iter(f"{SVG_NS}rect")]
    _, root = _svg(client, seed.badge_token, show="status")
    assert _texts(root)[2] == "failing"


def test_passing_status_form(client, seed):
    _add(seed, score=50.0)
    _, root = _svg(client, seed.badge_token, show="status")
    assert _texts(root)[2] == "passing"


def test_latest_submission_still_grading_shows_grading(client, seed):
    _add(seed, score=50.0)
    _add(seed, status="running")
    _, root = _svg(client, seed.badge_token)
    assert _texts(root)[2] == "grading..."


def test_unsigned_or_tampered_runs_do_not_count(client, seed):
    _add(seed, score=20.0)
    _add(seed, score=60.0, signed=False)
    _, root = _svg(client, seed.badge_token)
    assert _texts(root)[2] == "20/61.5", "an unsigned run must not reach the badge"
    with session_scope() as db:
        run = db.scalars(select(GradingRun).where(GradingRun.score == 20.0)).one()
        run.score = 61.5  # edited in the database after signing
    _, root = _svg(client, seed.badge_token)
    assert _texts(root)[2] == "no submission"


def test_endpoint_json_validates_against_shields_schema(client, seed):
    _add(seed, score=30.0)
    response = client.get(f"/badges/{seed.badge_token}.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    jsonschema.validate(body, SHIELDS_ENDPOINT_SCHEMA)
    assert body["label"] == "cnn-spatial" and body["message"] == "30/61.5" and body["color"] == "orange"


def test_unknown_token_is_a_bare_404(client, seed):
    for path in ("/badges/not-a-token.svg", "/badges/not-a-token.json", "/badges/" + "a" * 300 + ".svg"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {"detail": "Not found."}


def test_instructor_rotates_badge_and_old_url_stops_working(client, seed):
    instructor_token = _instructor_token(seed)
    old = seed.badge_token
    denied = client.post(f"/api/v1/assignments/{seed.assignment_slug}/badges/{seed.student_id}/rotate",
                         headers={"Authorization": f"Bearer {seed.student_token}"})
    assert denied.status_code == 403
    response = client.post(f"/api/v1/assignments/{seed.assignment_slug}/badges/{seed.student_id}/rotate",
                           headers={"Authorization": f"Bearer {instructor_token}"})
    assert response.status_code == 200, response.text
    links = response.json()
    new = links["badge_url"].rsplit("/", 1)[1].removesuffix(".svg")
    assert new != old
    assert links["markdown"] == f"![cnn-spatial]({links['badge_url']})"
    assert client.get(f"/badges/{old}.svg").status_code == 404
    assert client.get(f"/badges/{new}.svg").status_code == 200


def test_student_sees_badge_links_on_the_api(client, seed):
    response = client.get("/api/v1/me/badges", headers={"Authorization": f"Bearer {seed.student_token}"})
    assert response.status_code == 200
    [links] = response.json()
    assert links["badge_url"].endswith(f"/badges/{seed.badge_token}.svg")
    assert links["markdown"].startswith("![cnn-spatial](")


@pytest.mark.parametrize("label", ['a<b>&"c\'', "x\x01y", "ünïcödé ✓"])
def test_svg_escapes_any_label(label):
    root = ET.fromstring(render_svg(Badge(label, "1/2", "red")))
    assert root.find(f"{SVG_NS}title").text.startswith(label.replace("\x01", ""))


def test_text_width_grows_with_text():
    assert 0 < text_width("i") < text_width("W") < text_width("WWWW")
    assert 50 < text_width("cnn-spatial") < 75  # shields.io's Verdana 11px width of this label is about 63


def _instructor_token(seed) -> str:
    from grader.store import credentials

    with session_scope() as db:
        return credentials.issue_api_token(db, db.get(User, seed.instructor_id), "test")
