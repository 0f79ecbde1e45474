"""A student's day in a real Chromium: sign in with the course token, submit spatial.py through the form, watch it
wait in the queue and get graded live, read the feedback, see the history with a late penalty; then the instructor
grants an extension and the penalty disappears (the deadline page lists the change from the audit log); a
classmate's training run appears on the open leaderboard without a reload. axe-core checks every page on the way
(no serious violations).

The Celery worker is paused (SIGSTOP) while the test must see the run still waiting, as in the dashboard test."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.services import leaderboard
from grader.store.models import Assignment, User, utcnow
from tests.api.web.browser.accessibility import assert_accessible
from tests.factories import (INSTRUCTOR_EMAIL, INSTRUCTOR_PASSWORD, make_assignment, make_course, make_instructor,
                             make_student, make_submission)
from tests.grader.test_similarity import STARTER, disguised
from tests.api.web.browser.screens import SCREENSHOTS, shot, worker_paused
from tests.live_service import ARTIFACTS, TEST_SECRET_KEY, environment, fresh_database, live_service

pytestmark = [pytest.mark.browser, pytest.mark.docker, pytest.mark.slow]

GOOD = PROJECT_ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
GRADING_TIMEOUT_MS = 240_000  # two cores shared with other work: a correctness run can queue for a while


@pytest.fixture(scope="module")
def service():
    """The live service (own database, own Redis database) with a course, a late assignment and a student."""
    with fresh_database("h12_students") as url:
        with environment(DATABASE_URL=url, SECRET_KEY=TEST_SECRET_KEY, ENVIRONMENT="test"):
            with session_scope() as db:
                course = make_course(db, make_instructor(db))
                assignment = make_assignment(db, course, "cnn-students", due_at=utcnow() - timedelta(hours=30))
                _, token = make_student(db, course, "ann@example.edu", "Ann Lovelace", "s001")
                bob, _ = make_student(db, course, "bob@example.edu", "Bob Babbage", "s002")
                # Bob's latest file is Ann's with every name and comment changed (stored directly: the
                # similarity report reads files, not scores).
                make_submission(db, assignment, bob, score=10.0, source=disguised(GOOD.read_text()).encode())
            broker_db = int(os.environ.get("TEST_REDIS_WEB_DB", "13"))  # 12 is the dashboard browser test's
            with live_service(url, ARTIFACTS / "student-browser-logs", broker_db=broker_db) as live:
                live.student_token = token
                yield live


@pytest.fixture
def page(browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


def sign_in_and_open_the_assignment(page, base: str, student_token: str) -> None:
    """The student signs in with the course token, keyboard only, and opens the late assignment."""
    page.goto(base + "/student/home")
    expect(page).to_have_url(re.compile(r"/student/login\?next="))
    assert_accessible(page, "student sign-in")
    page.get_by_label("API token").fill(student_token)
    page.get_by_label("API token").press("Enter")  # keyboard only
    expect(page).to_have_url(re.compile(r"/student/home$"))
    assert_accessible(page, "student home")
    page.get_by_role("link", name=re.compile("cnn-students")).click()
    expect(page.get_by_test_id("your-deadline")).to_contain_text("Your deadline")
    assert_accessible(page, "student assignment")


def submit_and_follow_the_grading(page, service) -> None:
    """Submit spatial.py while the worker is paused: the page shows it queued, then the graded feedback, live."""
    with worker_paused(service):
        page.get_by_label(re.compile("Your spatial.py")).set_input_files(str(GOOD))
        page.get_by_test_id("submit-form").locator("button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/student/submissions/\d+"))
        expect(page.get_by_test_id("run-status")).to_have_text("queued")
        expect(page.get_by_test_id("run-progress")).to_contain_text("place 1 in the queue")
        assert_accessible(page, "student submission (queued)")
        page.evaluate("window.__noReload = true")
        shot(page, "student-01-queued")
    expect(page.get_by_test_id("run-status")).to_have_text("graded", timeout=GRADING_TIMEOUT_MS)
    assert page.evaluate("window.__noReload") is True  # followed live, not reloaded
    expect(page.get_by_test_id("signature")).to_contain_text("verifies")
    expect(page.get_by_test_id("checks").locator("tbody tr")).to_have_count(63)
    expect(page.get_by_test_id("counted-score")).to_contain_text("late policy keeps 80%")
    assert_accessible(page, "student submission (graded)")
    shot(page, "student-02-feedback")


def open_history_with_late_penalty(page):
    """The assignment's history shows the submission late by 2 days, with its penalty. Returns the history table."""
    page.get_by_role("link", name="cnn-students").first.click()
    history = page.get_by_test_id("student-history")
    expect(history.locator("tbody tr")).to_have_count(1)
    expect(history.get_by_test_id("lateness")).to_have_text("late by 2 days")
    expect(history).to_contain_text("late penalty")
    shot(page, "student-03-history")
    return history


def staff_grants_ann_an_extension(browser, base: str):
    """The instructor turns the leaderboard on and grants Ann an extension. Returns the staff page."""
    staff = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True).new_page()
    staff.goto(base + "/login")
    assert_accessible(staff, "staff login")
    staff.fill("input[name=email]", INSTRUCTOR_EMAIL)
    staff.fill("input[name=password]", INSTRUCTOR_PASSWORD)
    staff.click("form[data-testid=login-form] button[type=submit]")
    expect(staff).to_have_url(re.compile(r"/dashboard/courses/cnn101$"))
    assert_accessible(staff, "staff course page")
    staff.goto(base + "/dashboard/assignments/cnn-students")
    assert_accessible(staff, "staff assignment page")
    staff.get_by_test_id("leaderboard-switch").locator("button").click()
    expect(staff.get_by_test_id("notice")).to_contain_text("Leaderboard on")
    staff.locator("#students tr", has_text="ann@example.edu").locator("[data-field=status] a").click()
    expect(staff.get_by_test_id("run-status")).to_have_text("graded")
    assert_accessible(staff, "staff submission page")
    staff.goto(base + "/dashboard/assignments/cnn-students")
    staff.get_by_test_id("extensions-link").click()
    assert_accessible(staff, "staff extensions page")
    form = staff.get_by_test_id("extension-form")
    form.get_by_label("Student's email").fill("ann@example.edu")
    form.get_by_label(re.compile("New due date")).fill((utcnow() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"))
    form.get_by_label(re.compile("Reason")).fill("medical certificate")
    form.locator("button[type=submit]").click()
    expect(staff.get_by_test_id("notice")).to_contain_text("lateness recomputed for 1 submission")
    expect(staff.get_by_test_id("extensions")).to_contain_text("medical certificate")
    history = staff.get_by_test_id("deadline-history")  # the audit entries of the change, for the staff
    expect(history.locator("tbody tr", has_text="medical certificate")).to_contain_text("ann@example.edu")
    expect(history.locator("tbody tr", has_text="old late days: 2")).to_contain_text("extension for cnn-students")
    shot(staff, "staff-01-extension")
    return staff


def staff_runs_the_similarity_report(staff, base: str) -> None:
    """The similarity report: a background task on the training queue; the renamed copy ranks first."""
    staff.goto(base + "/dashboard/assignments/cnn-students")
    staff.get_by_test_id("similarity-link").click()
    starter = SCREENSHOTS / "starter_spatial.py"
    starter.write_text(STARTER)
    staff.get_by_label(re.compile("Starter file")).set_input_files(str(starter))
    staff.get_by_test_id("similarity-form").locator("button[type=submit]").click()
    expect(staff.get_by_test_id("notice")).to_contain_text("queued")
    expect(staff.get_by_test_id("similarity-status")).to_have_text("done", timeout=GRADING_TIMEOUT_MS)
    first_row = staff.get_by_test_id("similarity-pairs").locator("tbody tr").first
    expect(first_row).to_contain_text("ann@example.edu")
    expect(first_row).to_contain_text("bob@example.edu")
    assert_accessible(staff, "similarity report")
    shot(staff, "staff-02-similarity")
    first_row.get_by_role("link").click()
    expect(staff.get_by_test_id("similarity-side-by-side").locator("mark").first).to_be_visible()
    assert_accessible(staff, "similarity pair")
    shot(staff, "staff-03-similarity-pair")


def leaderboard_follows_a_new_training_run(page) -> None:
    """Bob's signed CIFAR-10 run lands while Ann looks at the board: it appears without a reload."""
    board = page.get_by_test_id("leaderboard")
    expect(board).to_contain_text("No signed CIFAR-10 runs")  # Ann's run graded correctness only
    page.evaluate("window.__noReload = true")
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == "cnn-students"))
        bob = db.scalar(select(User).where(User.email == "bob@example.edu"))
        leaderboard.choose_name(db, assignment, bob, "Tensor Tamer")
        make_submission(db, assignment, bob, score=40.0, accuracy=0.781)
    first = board.locator("tbody tr").first
    expect(first).to_contain_text("Tensor Tamer", timeout=15_000)
    expect(first).to_contain_text("78.1%")
    assert page.evaluate("window.__noReload") is True  # refreshed in place, not reloaded
    shot(page, "student-05-leaderboard-live")


def test_student_submits_follows_grading_and_gets_an_extension(page, service, browser):
    base = service.base_url
    sign_in_and_open_the_assignment(page, base, service.student_token)
    submit_and_follow_the_grading(page, service)
    history = open_history_with_late_penalty(page)
    # The instructor grants Ann an extension; her penalty disappears.
    staff = staff_grants_ann_an_extension(browser, base)
    staff_runs_the_similarity_report(staff, base)
    staff.context.close()
    page.goto(base + "/dashboard/assignments/cnn-students/similarity")  # never for students
    expect(page).to_have_url(re.compile(r"/login\?next="))

    page.goto(base + "/student/assignments/cnn-students")
    expect(history.get_by_test_id("lateness")).to_have_text("on time")
    expect(history).not_to_contain_text("late penalty")
    expect(page.get_by_test_id("your-deadline")).to_contain_text("an extension granted to you")
    assert_accessible(page, "student assignment after the extension")
    shot(page, "student-04-extended")
    page.get_by_test_id("leaderboard-link").click()
    page.get_by_label(re.compile("Pseudonym")).fill("Conv Queen")
    page.get_by_label(re.compile("Pseudonym")).press("Enter")
    expect(page.get_by_test_id("notice")).to_contain_text("Conv Queen")
    assert_accessible(page, "leaderboard")
    leaderboard_follows_a_new_training_run(page)
    with session_scope() as db:
        assert db.scalar(select(Assignment).where(Assignment.slug == "cnn-students")).due_at < utcnow()
