"""`grader grade PATH`: grade one file locally through the same pipeline the workers use.

Exit code: 0 when the file reaches the spec's pass mark, 1 when it was graded below it, 2 when it could not be
graded (no sandbox, infrastructure fault, unreadable path or spec).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

BACKENDS = ("docker", "bwrap", "unsafe-subprocess")


def register(subparsers) -> None:
    parser = subparsers.add_parser("grade", help="grade one spatial.py locally and print the result",
                                   description="Grade one spatial.py through the grading pipeline.")
    parser.add_argument("path", type=Path, help="the student's spatial.py")
    parser.add_argument("--stages", default=None,
                        help="comma-separated stages to run, e.g. correctness or correctness,cifar10 "
                             "(default: every stage of the spec)")
    parser.add_argument("--json", action="store_true",
                        help="print exactly one JSON object (Gradescope's results.json fields, plus stages)")
    parser.add_argument("--spec", type=Path, default=None, help="assignment spec TOML (default: the module's)")
    parser.add_argument("--sandbox", choices=BACKENDS, default=None,
                        help="sandbox backend (default: settings, i.e. docker, else bwrap). unsafe-subprocess "
                             "isolates nothing: only for the engine's own tests")
    parser.set_defaults(handler=run)


def run(args) -> int:
    started = time.monotonic()
    from grader.pipeline import grade_submission
    from grader.settings import get_settings
    from grader.spec import SpecError, load_spec
    from grader.kits import KitError, runner_for
    from sandbox.interrupts import Interrupted, raise_on_termination
    from sandbox.runner import InfrastructureError

    raise_on_termination()  # SIGTERM, Ctrl-C, a closed terminal: the job's sandbox is removed before exiting
    try:
        source = args.path.read_bytes()
    except OSError as error:
        return _fail(args, f"cannot read {args.path}: {error.strerror or error}")
    try:
        spec = load_spec(args.spec)
    except SpecError as error:
        return _fail(args, str(error))
    stages = [name.strip() for name in args.stages.split(",") if name.strip()] if args.stages else None
    unknown = sorted(set(stages or ()) - set(spec.stage_names))
    if unknown:
        return _fail(args, f"unknown stage(s) {', '.join(unknown)}; this spec has {', '.join(spec.stage_names)}")
    settings = get_settings()
    on_event = None if args.json else _ProgressPrinter()
    try:
        runner = runner_for(spec, settings, args.sandbox)
        if args.sandbox == "unsafe-subprocess" and not args.json:
            print("warning: the unsafe-subprocess backend isolates nothing; never use it for untrusted files",
                  file=sys.stderr)
        result = grade_submission(source, spec=spec, stages=stages, runner=runner, on_event=on_event,
                                  settings=settings)
    except InfrastructureError as error:
        return _fail(args, f"the sandbox is not available: {error}")
    except KitError as error:
        return _fail(args, str(error))
    except Interrupted as interruption:
        _fail(args, f"{interruption}; grading stopped and its sandbox was removed")
        return interruption.exit_code
    if on_event is not None:
        on_event.finish()
    if args.json:
        from grader.gradescope.results import grade_json

        print(json.dumps(grade_json(result, execution_time=time.monotonic() - started)))
    else:
        print(format_report(result))
    if result.max_score > 0 and result.score >= spec.pass_mark * result.max_score - 1e-9:
        return 0
    return 1


def _fail(args, message: str) -> int:
    if args.json:
        print(json.dumps({"score": 0.0, "max_score": 0.0, "status": "error", "stages": [], "tests": [],
                          "grader_version": _version(), "message": message, "output": message,
                          "execution_time": 0.0}))
    else:
        print(f"grader grade: {message}", file=sys.stderr)
    return 2


def _version() -> str:
    from grader import __version__

    return __version__


def format_report(result) -> str:
    """A readable report: totals, each stage, then every check that did not pass with its feedback."""
    lines = [f"Score: {result.score:g} / {result.max_score:g}  ({result.status})"]
    for stage in result.stages:
        lines.append(f"  {stage.name:<12} {stage.score:g} / {stage.max_score:g}  {stage.status}, "
                     f"{stage.duration_s:.1f} s")
        if stage.message:
            lines.extend(f"      {line}" for line in stage.message.splitlines())
    failing = [test for test in result.tests if test.status != "passed"]
    passing = [test for test in result.tests if test.status == "passed"]
    if failing:
        lines.append("")
        lines.append("Checks that did not pass:")
        for test in failing:
            lines.append(f"  [{test.status.upper()}] {test.name}  {test.score:g} / {test.max_score:g}")
            lines.extend(f"      {line}" for line in test.output.splitlines())
    if passing:
        lines.append("")
        lines.append(f"Passed ({len(passing)}): " + ", ".join(test.name for test in passing))
    return "\n".join(lines)


class _ProgressPrinter:
    """Shows stage progress on stderr while grading runs."""

    def __init__(self):
        self.live = sys.stderr.isatty()
        self.dirty = False

    def __call__(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "stage_started":
            self._line(f"{event.get('stage')}: starting")
        elif kind == "progress":
            done, total = event.get("done"), event.get("total")
            if done is not None and total:
                what = event.get("running") or ""
                self._line(f"{event.get('stage')}: {done}/{total} {what}", transient=True)
            elif event.get("epoch") is not None:
                self._line(f"{event.get('stage')}: epoch {event.get('epoch')} batch {event.get('batch', '')}",
                           transient=True)
        elif kind == "stage_finished":
            self._line(f"{event.get('stage')}: {event.get('status')} {event.get('score', 0):g} / "
                       f"{event.get('max_score', 0):g}")

    def _line(self, text: str, transient: bool = False) -> None:
        if transient and not self.live:
            return
        if self.live:
            sys.stderr.write("\r\033[K" + text + ("" if transient else "\n"))
            self.dirty = transient
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def finish(self) -> None:
        if self.dirty:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
