"""`grader kit add | self-test`: store an uploaded course kit; run an assignment's reference solution."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grader.settings import get_settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("kit", help="Course kits (the course's own tinytorch package) and self-tests.")
    actions = parser.add_subparsers(dest="kit_action", required=True)
    add = actions.add_parser("add", help="Store a course kit (wheel, .zip or .tar.gz holding tinytorch/) and print "
                                         "the reference to put in a spec as `[assignment] kit = ...`.")
    add.add_argument("archive", type=Path)
    add.set_defaults(handler=run_add)
    test = actions.add_parser("self-test", help="Grade a reference solution under a spec; exit 0 only when it "
                                                "earns every correctness point.")
    test.add_argument("solution", type=Path)
    test.add_argument("--spec", type=Path, default=None, help="assignment spec TOML (default: the module's)")
    test.add_argument("--sandbox", default=None, help="backend: docker, bwrap or unsafe-subprocess (tests)")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=run_self_test)


def run_add(args: argparse.Namespace) -> int:
    from grader.kits import KitError, store_kit

    try:
        stored = store_kit(args.archive.read_bytes(), get_settings())
    except (OSError, KitError) as error:
        print(f"grader kit add: {error}", file=sys.stderr)
        return 2
    print(f"stored {stored.files} Python files at {stored.root}")
    print(f'kit = "{stored.reference}"')
    return 0


def run_self_test(args: argparse.Namespace) -> int:
    from grader.kits import KitError, runner_for
    from grader.self_test import run_self_test as self_test
    from grader.spec import SpecError, load_spec
    from sandbox.runner import InfrastructureError

    settings = get_settings()
    try:
        spec = load_spec(args.spec)
        runner = runner_for(spec, settings, args.sandbox)
        outcome = self_test(spec, args.solution.read_bytes(), runner=runner, settings=settings)
    except (OSError, SpecError, KitError, InfrastructureError) as error:
        print(f"grader kit self-test: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2))
    else:
        print(outcome.message)
        for name, output in outcome.failing:
            print(f"\n{name}\n  " + output.replace("\n", "\n  "))
    return 0 if outcome.passed else 1
