"""Dashboard and badge latency on a course-sized store: how long the pages an instructor opens take to render.

Run: `.venv/bin/python -m bench.dashboard_pages [--students 200] [--submissions 5]`. Creates a fresh Postgres
database (dropped afterwards), seeds one assignment with `--students` enrolled students and `--submissions` graded,
signed submissions each (63 checks per run, a CIFAR-10 stage with a training curve), then times, in-process through
FastAPI's TestClient (no network, one request at a time): the assignment page, each of its four charts, its
live-update JSON, a submission page, the course page, and the badge SVG and JSON.

Writes bench/results/dashboard_pages.json. Two cores shared with other work: figures are noisy (p50 over repeats).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import secrets
import statistics
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "dashboard_pages.json"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench-password"


def seed(students: int, submissions: int) -> dict:
    """The course, returning the ids and tokens the timed requests need."""
    from grader.store import credentials
    from grader.assignment_spec import default_spec_toml, summarize_spec
    from grader.store.db import session_scope
    from grader.store.models import (Assignment, Course, Enrollment, GradingRun, Submission, TestResultRow, User,
                                     utcnow)
    from grader.store.signing import sign_run

    spec = default_spec_toml()
    summary = summarize_spec(spec, ["correctness"])
    with session_scope() as db:
        instructor = User(email="prof@example.edu", name="Prof", role="instructor",
                          password_hash=credentials.hash_password(PASSWORD))
        course = Course(slug="bench", title="Bench course")
        db.add_all([instructor, course])
        db.flush()
        db.add(Enrollment(course_id=course.id, user_id=instructor.id, role="instructor"))  # access is per course
        assignment = Assignment(course_id=course.id, slug="cnn-bench", title="Bench", spec_toml=spec,
                                spec=summary.parsed, spec_version=summary.version, stage_weights=summary.stage_weights,
                                max_score=summary.max_score, pass_mark=summary.pass_mark)
        db.add(assignment)
        db.flush()
        badge_token, submission_id = None, None
        for number in range(students):
            student = User(email=f"s{number:04d}@example.edu", name=f"Student {number}", role="student")
            db.add(student)
            db.flush()
            db.add(Enrollment(course_id=course.id, user_id=student.id, role="student", student_number=f"{number}"))
            for attempt in range(submissions):
                source = f"# attempt {attempt} of {number}\n".encode() * 40
                submission = Submission(assignment_id=assignment.id, user_id=student.id, content=source,
                                        size_bytes=len(source), sha256=hashlib.sha256(source).hexdigest(),
                                        created_at=utcnow())
                db.add(submission)
                db.flush()
                failed = (number + attempt) % 7
                tests = [{"name": f"conv2d.forward.case{i}", "stage": "correctness",
                          "score": 0.0 if i < failed else 1.0, "max_score": 1.0,
                          "status": "failed" if i < failed else "passed", "visibility": "visible",
                          "output": "Output differs at [0, 1, 2, 3]." if i < failed else ""} for i in range(63)]
                accuracy = 0.55 + 0.3 * ((number * 7 + attempt) % 10) / 10
                curve = [{"epoch": e, "loss": 2.0 / e, "train_accuracy": accuracy * e / 10} for e in range(1, 11)]
                score = summary.max_score * (63 - failed) / 63
                result = {"score": score, "max_score": summary.max_score, "status": "graded", "tests": tests,
                          "stages": [{"name": "correctness", "score": score, "max_score": summary.max_score,
                                      "status": "graded", "duration_s": 3.0, "message": "", "details": {}},
                                     {"name": "cifar10", "score": 0.0, "max_score": 0.0, "status": "graded",
                                      "duration_s": 900.0, "message": "",
                                      "details": {"cifar10": {"test_accuracy": accuracy, "curve": curve}}}]}
                run = GradingRun(submission_id=submission.id, status="graded", kind="submit", result=result,
                                 score=score, max_score=summary.max_score, spec_version=summary.version,
                                 started_at=utcnow(), finished_at=utcnow())
                db.add(run)
                db.flush()
                db.add_all([TestResultRow(run_id=run.id, name=t["name"], stage="correctness", status=t["status"],
                                          score=t["score"], max_score=1.0) for t in tests])
                run.submission = submission
                run.signature = sign_run(run)
                submission_id = submission.id
            token = credentials.badge_token_for(db, student, assignment).token
            badge_token = badge_token or token
    return {"badge_token": badge_token, "submission_id": submission_id}


def timed(client, path: str, repeats: int) -> dict:
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(path)
        durations.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: HTTP {response.status_code}")
    return {"p50_ms": round(1000 * statistics.median(durations), 1), "max_ms": round(1000 * max(durations), 1),
            "repeats": repeats, "bytes": len(response.content)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--submissions", type=int, default=5)
    args = parser.parse_args(argv)
    name = f"bench_dashboard_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(DATABASE_URL=f"postgresql://postgres@127.0.0.1:5432/{name}", SECRET_KEY="bench-" + "k" * 32,
                      ENVIRONMENT="test")
    try:
        from fastapi.testclient import TestClient

        from api.main import create_app
        from grader.settings import get_settings
        from grader.store.db import reset_engine
        from grader.store.migrate import upgrade_head

        get_settings.cache_clear()
        reset_engine()
        upgrade_head()
        started = time.perf_counter()
        ids = seed(args.students, args.submissions)
        seed_seconds = time.perf_counter() - started
        with TestClient(create_app()) as client:
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
            client.post("/login", data={"email": "prof@example.edu", "password": PASSWORD, "csrf_token": csrf})
            figures = {
                "assignment_page": timed(client, "/dashboard/assignments/cnn-bench", 5),
                **{f"chart_{chart}": timed(client, f"/dashboard/assignments/cnn-bench/charts/{chart}.svg", 3)
                   for chart in ("scores", "checks", "accuracy", "timeline")},
                "assignment_live_json": timed(client, "/dashboard/assignments/cnn-bench/live.json", 5),
                "submission_page": timed(client, f"/dashboard/submissions/{ids['submission_id']}", 5),
                "course_page": timed(client, "/dashboard/courses/bench", 5),
                "badge_svg": timed(client, f"/badges/{ids['badge_token']}.svg", 50),
                "badge_json": timed(client, f"/badges/{ids['badge_token']}.json", 50),
            }
        report = {"students": args.students, "submissions_per_student": args.submissions,
                  "seed_seconds": round(seed_seconds, 1), "machine": f"{platform.machine()}, {os.cpu_count()} cores "
                  "shared with other work", "requests": figures}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
    finally:
        from grader.store.db import reset_engine

        reset_engine()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
