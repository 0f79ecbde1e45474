"""`grader export gradescope`: the assignment as an autograder archive for Gradescope (see grader/gradescope)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="Export an assignment's grader for another platform.")
    targets = parser.add_subparsers(dest="export_target", required=True)
    gradescope = targets.add_parser(
        "gradescope", help="Build the autograder.zip Gradescope expects (setup.sh, run_autograder, grader, kit, spec).",
        description="With --assignment the spec comes from the configured store (DATABASE_URL); with --spec from a "
                    "file, no database needed. Only the correctness stage travels.")
    source = gradescope.add_mutually_exclusive_group(required=True)
    source.add_argument("--assignment", metavar="SLUG", help="an assignment in the store")
    source.add_argument("--spec", type=Path, metavar="FILE", help="a spec TOML file (e.g. grader/specs/default.toml)")
    gradescope.add_argument("--name", default=None, help="the assignment's name in bundle.json (with --spec; "
                                                         "default: the file's name)")
    gradescope.add_argument("-o", "--output", type=Path, required=True, help="where to write the archive")
    gradescope.set_defaults(handler=run_gradescope)


def _fail(message: str) -> int:
    print(f"grader export: {message}", file=sys.stderr)
    return 2


def _from_store(slug: str) -> tuple[str, list[str]] | str:
    """(spec TOML, stages) of the assignment, or why not."""
    from sqlalchemy import select

    from grader.store.db import session_scope
    from grader.store.migrate import upgrade_head
    from grader.store.models import Assignment

    upgrade_head()
    with session_scope() as db:
        assignment = db.scalar(select(Assignment).where(Assignment.slug == slug))
        if assignment is None:
            known = ", ".join(db.scalars(select(Assignment.slug).order_by(Assignment.slug)).all()) or "none"
            return f"no assignment {slug!r} in the store (assignments: {known})"
        return assignment.spec_toml, list(assignment.stage_weights)


def run_gradescope(args: argparse.Namespace) -> int:
    from grader.gradescope.bundle import BundleError, build_bundle

    if args.spec is not None:
        try:
            spec_toml = args.spec.read_text(encoding="utf-8")
        except OSError as error:
            return _fail(f"cannot read {args.spec}: {error.strerror or error}")
        name, stages = args.name or args.spec.stem, None
    else:
        found = _from_store(args.assignment)
        if isinstance(found, str):
            return _fail(found)
        (spec_toml, stages), name = found, args.assignment
    try:
        bundle = build_bundle(args.output, assignment=name, spec_toml=spec_toml, stages=stages)
    except BundleError as error:
        return _fail(str(error))
    for note in bundle.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {bundle.path} ({bundle.path.stat().st_size // 1024} KiB): {bundle.assignment}, "
          f"stages {', '.join(bundle.stages)}, {bundle.max_score:g} points. Upload it as the assignment's "
          "autograder on Gradescope (base image: Ubuntu 24.04, for Python 3.11 or newer).")
    return 0
