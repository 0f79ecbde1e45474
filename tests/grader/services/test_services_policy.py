"""The access policy as a table: every action x every role in a course, written out by hand so that a change to
grader/services/policy.py that is not also made here fails."""

from __future__ import annotations

import pytest

from grader.services.policy import Action, allows, may_create_course

A = Action
# action: (not enrolled, student, student on own submission, ta, ta where the course allows overrides, instructor)
TABLE = {
    A.VIEW_COURSE:      (False, True,  True,  True,  True,  True),
    A.SUBMIT:           (False, True,  True,  True,  True,  True),
    A.READ_SUBMISSION:  (False, False, True,  True,  True,  True),
    A.SEE_HIDDEN:       (False, False, False, True,  True,  True),
    A.REGRADE:          (False, False, False, True,  True,  True),
    A.EXPORT_GRADES:    (False, False, False, True,  True,  True),
    A.ROTATE_BADGE:     (False, False, False, True,  True,  True),
    A.READ_ROSTER:      (False, False, False, True,  True,  True),
    A.READ_AUDIT:       (False, False, False, True,  True,  True),
    A.OVERRIDE:         (False, False, False, False, True,  True),
    A.EDIT_ROSTER:      (False, False, False, False, False, True),
    A.EDIT_ASSIGNMENTS: (False, False, False, False, False, True),
    A.EDIT_COURSE:      (False, False, False, False, False, True),
}
CALLERS = (
    ("not enrolled", dict(course_role=None)),
    ("student", dict(course_role="student")),
    ("student, own submission", dict(course_role="student", owner=True)),
    ("ta", dict(course_role="ta")),
    ("ta, overrides allowed", dict(course_role="ta", ta_may_override=True)),
    ("instructor", dict(course_role="instructor")),
)


def test_the_table_covers_every_action():
    assert set(TABLE) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("index", range(len(CALLERS)), ids=[name for name, _ in CALLERS])
def test_policy_table(action, index):
    caller = dict(CALLERS[index][1])
    role = caller.pop("course_role")
    assert allows(action, role, **caller) is TABLE[action][index]


@pytest.mark.parametrize("action", list(Action))
def test_admin_may_do_everything_anywhere(action):
    assert allows(action, None, is_admin=True)


@pytest.mark.parametrize("role", ["", "admin", "teacher", "INSTRUCTOR", "owner"])
def test_unknown_course_roles_may_do_nothing(role):
    assert not any(allows(action, role, owner=True, ta_may_override=True) for action in Action)


def test_owning_a_submission_grants_nothing_without_a_role():
    """A former student who left the course keeps nothing but what the role table gives."""
    assert not allows(Action.READ_SUBMISSION, None, owner=True)


@pytest.mark.parametrize("user_role, expected", [("admin", True), ("instructor", True), ("student", False)])
def test_who_creates_courses(user_role, expected):
    assert may_create_course(user_role) is expected
