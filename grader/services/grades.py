"""The gradebook export: one row per enrolled student, scored by THE counted-score rule (scores.py)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from grader.services.scores import CountedScore, Policy, standing
from grader.spreadsheet import safe_row
from grader.store.models import Assignment, Enrollment, Submission

CSV_HEADER = ("student_number", "email", "name", "score", "max_score", "submission_id", "run_id", "late_days",
              "submitted_at")


@dataclass(frozen=True)
class GradeRow:
    enrollment: Enrollment
    counted: CountedScore | None  # None: nothing counted yet


def grade_rows(db: Session, assignment: Assignment, policy: Policy = "best") -> list[GradeRow]:
    """Every student of the course (staff are left out), in enrollment order, with their standing."""
    enrollments = db.scalars(select(Enrollment).where(Enrollment.course_id == assignment.course_id,
                                                      Enrollment.role == "student")
                             .options(selectinload(Enrollment.user)).order_by(Enrollment.id)).all()
    by_user: dict[int, list[Submission]] = {}
    for submission in db.scalars(select(Submission).where(Submission.assignment_id == assignment.id)
                                 .options(selectinload(Submission.runs)).order_by(Submission.id)):
        by_user.setdefault(submission.user_id, []).append(submission)
    return [GradeRow(enrollment, standing(by_user.get(enrollment.user_id, []), policy)) for enrollment in enrollments]


def grades_csv(db: Session, assignment: Assignment, policy: Policy = "best") -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for row in grade_rows(db, assignment, policy):
        user, counted = row.enrollment.user, row.counted
        if counted is None:
            writer.writerow(safe_row([row.enrollment.student_number, user.email, user.name, "", assignment.max_score,
                                      "", "", "", ""]))
            continue
        submission = counted.submission
        writer.writerow(safe_row([row.enrollment.student_number, user.email, user.name, f"{counted.score:.2f}",
                                  f"{counted.max_score:g}", submission.id, counted.run.id, submission.late_days,
                                  submission.created_at.isoformat()]))
    return out.getvalue()


def grades_filename(assignment: Assignment, policy: Policy) -> str:
    return f"{assignment.slug}-grades-{policy}.csv"
