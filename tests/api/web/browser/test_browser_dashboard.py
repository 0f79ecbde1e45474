"""The instructor's day in a real Chromium: log in, create an assignment, upload a roster, watch a submission
get graded live, open it, regrade it, regrade everything through the preview, export grades; the badge renders.

The Celery worker is paused (SIGSTOP) around the moments the test must see a run still waiting, so "live"
is observed for certain rather than raced; it is resumed right after.
"""

from __future__ import annotations

import csv
import io
import re

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.store.models import Course
from tests.factories import INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_assignment, make_student, make_submission
from tests.api.web.browser.screens import SCREENSHOTS, shot, worker_paused

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.slow]

GOOD = PROJECT_ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
GRADING_TIMEOUT_MS = 180_000  # two cores shared with other work: a correctness run can queue for a while
ROSTER = "email,name,student_number\nann@example.edu,Ann Lovelace,s001\nbob@example.edu,Bob Babbage,s002\n"


def log_in(page, base_url: str) -> None:
    page.goto(base_url + "/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    shot(page, "01-login")
    page.fill("input[name=email]", INSTRUCTOR_EMAIL)
    page.fill("input[name=password]", INSTRUCTOR_PASSWORD)
    page.click("form[data-testid=login-form] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/dashboard/courses/cnn101$"))


def create_assignment(page) -> None:
    """Create assignment cnn-live from the default spec (correctness only, so the run takes seconds)."""
    form = page.get_by_test_id("create-assignment")
    form.locator("input[name=slug]").fill("cnn-live")
    form.locator("input[name=title]").fill("Module 09 (live test)")
    form.locator("input[name=due_at]").fill("2030-01-15T23:59")
    form.locator("input[name=with_training]").uncheck()
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/dashboard/assignments/cnn-live"))
    expect(page.get_by_test_id("notice")).to_contain_text("cnn-live created")


def upload_roster(page, base: str, tmp_path) -> str:
    """Upload the roster; the new students' tokens are shown once. Returns Ann's."""
    page.goto(base + "/dashboard/courses/cnn101")
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER)
    page.get_by_test_id("roster-form").locator("input[type=file]").set_input_files(str(roster))
    page.get_by_test_id("roster-form").locator("button[type=submit]").click()
    expect(page.get_by_test_id("roster-summary")).to_contain_text("2 new")
    shot(page, "03-roster")
    ann_token = page.get_by_test_id("roster-tokens").locator("tr", has_text="ann@example.edu") \
        .locator("code").inner_text()
    assert ann_token.startswith("gt_")
    return ann_token


def submit_and_watch_it_graded_live(page, service, base: str, ann_token: str):
    """A student submits while the worker is paused: the assignment page shows it waiting, then graded, live.

    Returns Ann's row in the assignment page's students table.
    """
    page.goto(base + "/dashboard/assignments/cnn-live")
    ann_row = page.locator("#students tr", has_text="ann@example.edu")
    expect(ann_row.locator("[data-field=status] .status")).to_have_text("none")
    with worker_paused(service):
        response = httpx.post(f"{base}/api/v1/assignments/cnn-live/submissions",
                              headers={"Authorization": f"Bearer {ann_token}"},
                              files={"file": ("spatial.py", GOOD.read_bytes(), "text/x-python")}, timeout=30)
        assert response.status_code == 202, response.text
        page.reload()
        expect(ann_row.locator("[data-field=status] .status")).to_have_text("queued")
        shot(page, "04-assignment-queued")
    expect(ann_row.locator("[data-field=status] .status")).to_have_text("graded", timeout=GRADING_TIMEOUT_MS)
    expect(ann_row.locator("[data-field=latest]")).to_have_text("61.5")
    return ann_row


def sort_filter_and_draw_charts(page, ann_row) -> None:
    """Sort and filter the students table on the client; the charts load."""
    page.fill("input[data-filter-for=students]", "bob")
    expect(ann_row).to_be_hidden()
    page.fill("input[data-filter-for=students]", "")
    expect(ann_row).to_be_visible()
    page.click("#students th:has-text('Latest')")
    page.click("#students th:has-text('Latest')")
    expect(page.locator("#students tbody tr").first).to_contain_text("ann@example.edu")
    page.reload()
    for name in ("scores", "checks", "accuracy", "timeline"):
        chart = page.get_by_test_id(f"chart-{name}")
        expect(chart).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=chart.element_handle())
    shot(page, "05-assignment-graded")


def open_submission_and_regrade_it(page, service, ann_row) -> None:
    """Open the submission (highlighted source, every check with feedback, run history), then regrade it."""
    ann_row.locator("[data-field=status] a").click()
    expect(page.get_by_test_id("run-status")).to_have_text("graded")
    expect(page.get_by_test_id("checks").locator("tbody tr")).to_have_count(63)
    expect(page.locator(".source .highlight")).to_be_visible()
    shot(page, "06-submission")

    # Regrade it while the worker is paused: the page follows the new run without a reload.
    with worker_paused(service):
        page.get_by_test_id("regrade-one").locator("button").click()
        expect(page.get_by_test_id("notice")).to_contain_text("Regrade queued")
        expect(page.get_by_test_id("run-status")).to_have_text("queued")
        page.evaluate("window.__noReload = true")  # survives only if the page is not reloaded
        shot(page, "07-regrade-queued")
    expect(page.get_by_test_id("run-status")).to_have_text("graded", timeout=GRADING_TIMEOUT_MS)
    expect(page.get_by_test_id("run-history").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("run-history")).to_contain_text("regrade")
    assert page.evaluate("window.__noReload") is True
    shot(page, "08-regraded")


def regrade_all_through_preview(page, base: str) -> None:
    """Regrade the whole assignment: a preview first, applied on confirmation."""
    page.goto(base + "/dashboard/assignments/cnn-live")
    page.get_by_test_id("regrade-all").locator("button").click()
    expect(page).to_have_url(re.compile(r"/regrade/[0-9a-f]+$"))
    confirm = page.get_by_test_id("confirm-regrade")
    expect(confirm).to_be_visible(timeout=GRADING_TIMEOUT_MS)
    expect(page.get_by_test_id("preview-summary")).to_contain_text("0 score(s) would change")
    shot(page, "09-regrade-preview")
    confirm.locator("button").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Regrade applied")


def export_grades_and_log_out(page, base: str) -> None:
    """Export the grades, then log out."""
    with page.expect_download() as download_info:
        page.get_by_test_id("export-best").click()
    download = download_info.value
    rows = {row["email"]: row for row in csv.DictReader(io.StringIO(open(download.path()).read()))}
    assert float(rows["ann@example.edu"]["score"]) == 61.5
    assert rows["bob@example.edu"]["score"] == ""

    # Log out.
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/login"))
    page.goto(base + "/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next="))


def test_instructor_workflow(page, service, tmp_path):
    base = service.base_url
    log_in(page, base)
    expect(page.get_by_test_id("queue-depth")).to_have_text("0")
    shot(page, "02-course")

    create_assignment(page)
    ann_token = upload_roster(page, base, tmp_path)
    ann_row = submit_and_watch_it_graded_live(page, service, base, ann_token)
    sort_filter_and_draw_charts(page, ann_row)
    open_submission_and_regrade_it(page, service, ann_row)
    regrade_all_through_preview(page, base)
    export_grades_and_log_out(page, base)


def test_badge_renders(page, service):
    with session_scope() as db:
        course = db.scalar(select(Course).where(Course.slug == "cnn101"))
        assignment = make_assignment(db, course, "cnn-badge")
        student, token = make_student(db, course, "cara@example.edu", "Cara")
        make_submission(db, assignment, student, score=50.0)
    page.goto(service.base_url + "/student")
    page.fill("input[name=token]", token)
    page.click("form[data-testid=student-form] button[type=submit]")
    markdown = page.locator("section", has_text="cnn-badge").get_by_test_id("badge-markdown")
    expect(markdown).to_have_value(re.compile(r"^!\[cnn-badge\]\(http://127\.0\.0\.1:\d+/badges/[\w-]+\.svg\)$"))
    badge_image = page.locator("img[alt='cnn-badge badge']")
    page.wait_for_function("img => img.complete && img.naturalWidth > 40", arg=badge_image.element_handle())
    shot(page, "10-student-badge")
    badge_url = re.search(r"\((.*)\)", markdown.input_value()).group(1)
    page.goto(badge_url)
    svg = page.locator("svg")
    expect(svg.locator("title")).to_have_text("cnn-badge: 50/61.5")
    box = svg.bounding_box()
    assert box and box["width"] > 60 and box["height"] == 20
    svg.screenshot(path=str(SCREENSHOTS / "11-badge.png"))
