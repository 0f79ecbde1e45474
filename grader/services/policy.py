"""Who may do what: the one rule of access, as a table. Nothing else in the code decides it.

A site admin may do everything. Anyone else acts in a course through their role there (`Enrollment.role`):

| action            | student | ta                        | instructor |
|-------------------|---------|---------------------------|------------|
| view_course       | yes     | yes                       | yes        |
| submit            | yes     | yes                       | yes        |
| read_submission   | own     | yes                       | yes        |
| see_hidden        | -       | yes                       | yes        |
| regrade           | -       | yes                       | yes        |
| export_grades     | -       | yes                       | yes        |
| rotate_badge      | -       | yes                       | yes        |
| read_roster       | -       | yes                       | yes        |
| read_audit        | -       | yes                       | yes        |
| override          | -       | if the course allows it   | yes        |
| edit_roster       | -       | -                         | yes        |
| edit_assignments  | -       | -                         | yes        |
| edit_course       | -       | -                         | yes        |

`see_hidden` covers hidden checks' details before the due date, the spec text and regrade previews. Someone
with no role in a course may do nothing there (the API answers 404, as for a thing that does not exist); someone
with a role but not the action gets 403. Outside any course: admins and "instructor" accounts may create
courses (and become their instructor); only course staff (instructor, TA) and admins use the dashboard.
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    VIEW_COURSE = "view_course"  # the course, its assignments (without spec text)
    SUBMIT = "submit"
    READ_SUBMISSION = "read_submission"  # a submission, its runs, file, progress; staff: everyone's, the dashboard
    SEE_HIDDEN = "see_hidden"
    REGRADE = "regrade"
    EXPORT_GRADES = "export_grades"
    ROTATE_BADGE = "rotate_badge"
    READ_ROSTER = "read_roster"
    READ_AUDIT = "read_audit"
    OVERRIDE = "override"
    EDIT_ROSTER = "edit_roster"
    EDIT_ASSIGNMENTS = "edit_assignments"  # create an assignment, change its dates, limits, pass mark, spec
    EDIT_COURSE = "edit_course"  # the course's title and settings (whether TAs may override)


STAFF_ROLES = ("instructor", "ta")

ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "student": frozenset({Action.VIEW_COURSE, Action.SUBMIT}),
    "ta": frozenset({Action.VIEW_COURSE, Action.SUBMIT, Action.READ_SUBMISSION, Action.SEE_HIDDEN, Action.REGRADE,
                     Action.EXPORT_GRADES, Action.ROTATE_BADGE, Action.READ_ROSTER, Action.READ_AUDIT}),
    "instructor": frozenset(Action),
}
OWNER_ACTIONS = frozenset({Action.READ_SUBMISSION})  # what a student may do to their own submission


def allows(action: Action, course_role: str | None, *, is_admin: bool = False, owner: bool = False,
           ta_may_override: bool = False) -> bool:
    """Whether someone with `course_role` in a course (None: not enrolled) may do `action` there.

    Args:
        owner: the thing acted on is the caller's own submission (or one of its runs).
        ta_may_override: the course lets its TAs set scores by hand.
    """
    if is_admin:
        return True
    if course_role not in ROLE_ACTIONS:
        return False
    if action is Action.OVERRIDE and course_role == "ta":
        return ta_may_override
    return action in ROLE_ACTIONS[course_role] or (owner and action in OWNER_ACTIONS)


def is_staff(course_role: str | None) -> bool:
    return course_role in STAFF_ROLES


# What a refused caller is told they may not do ("Your role in cnn-101 does not allow you to ...").
ACTION_TEXT = {
    Action.VIEW_COURSE: "see this course", Action.SUBMIT: "submit", Action.READ_SUBMISSION: "see this submission",
    Action.SEE_HIDDEN: "see hidden details", Action.REGRADE: "regrade submissions",
    Action.EXPORT_GRADES: "export grades", Action.ROTATE_BADGE: "rotate badges", Action.READ_ROSTER: "read the roster",
    Action.READ_AUDIT: "read the audit log", Action.OVERRIDE: "set scores by hand",
    Action.EDIT_ROSTER: "change the roster", Action.EDIT_ASSIGNMENTS: "create or change assignments",
    Action.EDIT_COURSE: "change the course's settings",
}


def may_create_course(user_role: str) -> bool:
    return user_role in ("admin", "instructor")
