"""Kits and self-tests through the API: upload a course kit, publish an assignment only when the instructor's
reference solution earns every correctness point (real Postgres, Docker sandbox)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.fixtures.mutants import mutant_source

ROOT = Path(__file__).resolve().parents[2]
KIT = ROOT / "reference" / "kit"
GOOD = (ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py").read_text()
EXTRA = "def doubled(value):\n    return 2 * value\n"


def kit_upload() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted((KIT / "tinytorch").rglob("*.py")):
            archive.add(path, arcname=f"course/{path.relative_to(KIT)}")
        info = tarfile.TarInfo("course/tinytorch/core/course_extras.py")
        info.size = len(EXTRA)
        archive.addfile(info, io.BytesIO(EXTRA.encode()))
    return buffer.getvalue()


@pytest.mark.docker  # the self-test grades in the API process's sandbox
def test_kit_upload_then_assignment_with_self_test(client, world):
    headers = world.headers("instructor")
    uploaded = client.post(f"/api/v1/courses/{world.course}/kits", headers=headers,
                           files={"file": ("tinytorch.tar.gz", kit_upload())})
    assert uploaded.status_code == 201, uploaded.text
    kit = uploaded.json()["kit"]
    assert kit.startswith("sha256:") and uploaded.json()["files"] > 10
    bad = client.post(f"/api/v1/courses/{world.course}/kits", headers=headers, files={"file": ("x.zip", b"nope")})
    assert bad.status_code == 422 and "wheel, a .zip or a .tar" in bad.json()["detail"]

    spec = (ROOT / "grader" / "specs" / "default.toml").read_text().replace(
        "pass_mark = 0.75", f'pass_mark = 0.75\nkit = "{kit}"')
    solution = "from tinytorch.core.course_extras import doubled\n\nassert doubled(2) == 4\n" + GOOD
    created = client.post(f"/api/v1/courses/{world.course}/assignments", headers=headers,
                          json={"slug": "with-kit", "title": "Own kit", "spec_toml": spec, "stages": ["correctness"],
                                "reference_solution": solution})
    assert created.status_code == 201, created.text
    self_test = created.json()["self_test"]
    assert self_test["passed"] and self_test["score"] == self_test["max_score"] and self_test["failing"] == []

    refused = client.post(f"/api/v1/courses/{world.course}/assignments", headers=headers,
                          json={"slug": "broken-ref", "title": "Broken", "spec_toml": spec, "stages": ["correctness"],
                                "reference_solution": mutant_source("conv_flipped_kernel").decode()})
    assert refused.status_code == 422
    assert "Self-test failed" in refused.json()["detail"] and "conv2d.forward.k3_stride1_pad0" in refused.json()["detail"]
    assert client.get("/api/v1/assignments/broken-ref", headers=headers).status_code == 404  # nothing was kept

    rerun = client.post("/api/v1/assignments/with-kit/self-test", headers=headers,
                        files={"file": ("spatial.py", mutant_source("conv_flipped_kernel"))})
    assert rerun.status_code == 200 and not rerun.json()["passed"]
    assert any(item["check"].startswith("conv2d.") for item in rerun.json()["failing"])
    assert client.get("/api/v1/assignments/with-kit", headers=headers).json()["self_test"]["passed"] is False

    import re

    login_page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
    client.post("/login", data={"email": world.instructor_email, "password": world.instructor_password,
                                "csrf_token": csrf})
    page = client.get("/dashboard/assignments/with-kit").text
    assert "Self-test FAILED" in page and "conv2d.forward" in page


def test_dashboard_kit_upload(client, world):
    import re

    login_page = client.get("/login").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
    client.post("/login", data={"email": world.instructor_email, "password": world.instructor_password,
                                "csrf_token": csrf})
    page = client.get(f"/dashboard/courses/{world.course}").text
    assert 'data-testid="kit-form"' in page
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    stored = client.post(f"/dashboard/courses/{world.course}/kits", data={"csrf_token": csrf},
                         files={"file": ("tinytorch.tar.gz", kit_upload())})
    assert 'kit = &#34;sha256:' in stored.text or 'kit = "sha256:' in stored.text
    refused = client.post(f"/dashboard/courses/{world.course}/kits", data={"csrf_token": csrf},
                          files={"file": ("x.zip", b"nope")})
    assert "Kit not stored" in refused.text
