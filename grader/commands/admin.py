"""`grader admin`: users, passwords, courses, enrollments and API tokens, run against the configured store
(DATABASE_URL)."""

from __future__ import annotations

import argparse
import sys

from grader.store.accounts import COURSE_ROLES, SITE_ROLES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("admin", help="Manage users, courses, enrollments and API tokens.",
                                   description="Runs against the configured store (DATABASE_URL); migrates it first.")
    actions = parser.add_subparsers(dest="admin_action", required=True)

    create_user = actions.add_parser("create-user", help="Create a user.")
    create_user.add_argument("email")
    create_user.add_argument("--name", required=True)
    create_user.add_argument("--role", required=True, choices=SITE_ROLES, help="site role")
    create_user.add_argument("--password-stdin", action="store_true",
                             help="read a password (first line of standard input) for the dashboard and "
                                  "POST /api/v1/auth/token; staff only")
    create_user.set_defaults(handler=run_create_user)

    set_password = actions.add_parser("set-password", help="Set a user's password (read from standard input); "
                                                           "ends their dashboard sessions.")
    set_password.add_argument("email")
    set_password.set_defaults(handler=run_set_password)

    create_course = actions.add_parser("create-course", help="Create a course.")
    create_course.add_argument("slug")
    create_course.add_argument("--title", required=True)
    create_course.set_defaults(handler=run_create_course)

    enroll = actions.add_parser("enroll", help="Enroll a user in a course (or change the role of an enrollment).")
    enroll.add_argument("course", help="course slug")
    enroll.add_argument("email")
    enroll.add_argument("--role", required=True, choices=COURSE_ROLES, help="role in this course")
    enroll.add_argument("--student-number", default="", help="the LMS's id of a student, for grade export")
    enroll.set_defaults(handler=run_enroll)

    issue = actions.add_parser("issue-token", help="Issue an API token; it is printed once and never stored.")
    issue.add_argument("email")
    issue.add_argument("--label", default="admin-cli")
    issue.add_argument("--expires-days", type=float, default=None, help="valid for this many days (default: "
                                                                         "until revoked)")
    issue.set_defaults(handler=run_issue_token)

    revoke = actions.add_parser("revoke-tokens", help="Revoke every API token of a user and end their dashboard "
                                                      "sessions.")
    revoke.add_argument("email")
    revoke.add_argument("--label", default=None, help="revoke only the tokens with this label (sessions stay)")
    revoke.set_defaults(handler=run_revoke_tokens)

    listing = actions.add_parser("list-users", help="List users with their roles, enrollments and token counts.")
    listing.set_defaults(handler=run_list_users)


def _in_store(action) -> int:
    """Run `action(db)` in one transaction; a refused request prints its reason and changes nothing."""
    from grader.store.accounts import AccountError
    from grader.store.db import session_scope
    from grader.store.migrate import upgrade_head

    upgrade_head()
    try:
        with session_scope() as db:
            action(db)
    except AccountError as error:
        print(f"grader admin: {error}", file=sys.stderr)
        return 1
    return 0


def _read_password() -> str:
    line = sys.stdin.readline()
    return line[:-1] if line.endswith("\n") else line


def run_create_user(args: argparse.Namespace) -> int:
    from grader.store import accounts

    password = _read_password() if args.password_stdin else None

    def action(db) -> None:
        user = accounts.create_user(db, args.email, args.name, args.role, password)
        print(f"created {user.role} {user.email}" + ("" if password is not None or user.role == "student" else
              " (no password: give them a token with `grader admin issue-token`)"))

    return _in_store(action)


def run_set_password(args: argparse.Namespace) -> int:
    from grader.store import accounts

    password = _read_password()

    def action(db) -> None:
        user = accounts.set_password(db, args.email, password)
        print(f"set the password of {user.email} and ended their dashboard sessions")

    return _in_store(action)


def run_create_course(args: argparse.Namespace) -> int:
    from grader.store import accounts

    def action(db) -> None:
        course = accounts.create_course(db, args.slug, args.title)
        print(f"created course {course.slug} ({course.title})")

    return _in_store(action)


def run_enroll(args: argparse.Namespace) -> int:
    from grader.store import accounts

    def action(db) -> None:
        enrollment = accounts.enroll(db, args.course, args.email, args.role, args.student_number)
        print(f"{enrollment.user.email} is {enrollment.role} in {enrollment.course.slug}")

    return _in_store(action)


def run_issue_token(args: argparse.Namespace) -> int:
    from grader.store import accounts, credentials

    if args.expires_days is not None and not 0 < args.expires_days <= 3650:
        print("grader admin: --expires-days must be between 0 and 3650", file=sys.stderr)
        return 1

    def action(db) -> None:
        user = accounts.user_by_email(db, args.email)
        token = credentials.issue_api_token(db, user, args.label[:100], args.expires_days)
        print(token)  # alone on stdout, so that `TOKEN=$(grader admin issue-token ...)` works
        until = f"for {args.expires_days:g} day(s)" if args.expires_days is not None else "until revoked"
        print(f"token for {user.email} ({args.label}), valid {until}; it is not shown again", file=sys.stderr)

    return _in_store(action)


def run_revoke_tokens(args: argparse.Namespace) -> int:
    from grader.store import accounts, credentials

    def action(db) -> None:
        user = accounts.user_by_email(db, args.email)
        revoked = credentials.revoke_access(db, user, args.label)
        if args.label is None:
            print(f"revoked {revoked} API token(s) of {user.email} and ended their dashboard sessions")
        else:
            print(f"revoked {revoked} API token(s) of {user.email} labelled {args.label!r}")

    return _in_store(action)


def run_list_users(args: argparse.Namespace) -> int:
    from grader.store import accounts

    def action(db) -> None:
        rows = accounts.list_users(db)
        print(f"{'email':<32} {'role':<10} {'tokens':>6} {'password':<8} {'name':<24} enrollments")
        for row in rows:
            print(f"{row.email:<32} {row.role:<10} {row.active_tokens:>6} {'yes' if row.has_password else 'no':<8} "
                  f"{row.name[:24]:<24} {' '.join(row.enrollments) or '-'}")

    return _in_store(action)
