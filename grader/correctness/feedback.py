"""Feedback of the correctness stage: one check's verdict (fraction, status, message) from the harness record,
and the messages about the job as a whole (import failures, limits, exits), written for the student.

Every field of the record is untrusted: it is read here with type checks and length caps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.checks import CLASS_NAMES, DEFAULT_OPTIONS, CatalogueOptions, Check, PreparedRun
from grader.checks.simplecnn import parameter_problems
from grader.correctness.result_file import HarnessResult
from grader.diagnosis import compare, diagnose, tolerance
from sandbox.runner import GiB, SandboxOutcome

TEXT_MAX_CHARS = 1500  # longest exception text shown to a student
EXPECTED_CLASSES = "Conv2D (or Conv2d), MaxPool2D (or MaxPool2d), AvgPool2D (or AvgPool2d), Flatten, SimpleCNN"


def expected_classes(options: CatalogueOptions = DEFAULT_OPTIONS) -> str:
    """The names the assignment looks for, for messages: "Conv2D (or Conv2d), ..., SimpleCNN"."""
    parts = []
    for component in CLASS_NAMES:
        if component == "flatten" and options.flatten == "none":
            continue
        names = options.names(component)
        text = names[0] + (f" (or {names[1]})" if len(names) > 1 else "")
        parts.append(text + ("()" if component == "flatten" and options.flatten == "function" else ""))
    return ", ".join(parts)


def _text(value: Any, limit: int = TEXT_MAX_CHARS) -> str:
    return value[:limit] if isinstance(value, str) else ""


def entry_of(record: dict, run_id: str) -> dict | None:
    runs = record.get("runs")
    entry = runs.get(run_id) if isinstance(runs, dict) else None
    return entry if isinstance(entry, dict) else None


def _where(entry: dict) -> str:
    line = entry.get("line")
    if isinstance(line, list) and len(line) == 2 and isinstance(line[0], int) and isinstance(line[1], str):
        return f" (spatial.py line {line[0]}, in {line[1][:60]})"
    return ""


def _shape_list(value: Any) -> list | None:
    """A validated list of parameter shapes from the record (None if absent or malformed)."""
    if not isinstance(value, list):
        return None
    shapes = []
    for shape in value[:64]:
        ok = isinstance(shape, list) and len(shape) <= 6 and all(isinstance(n, int) for n in shape)
        shapes.append(shape if ok else None)
    return shapes


def _param_shapes(entry: dict) -> dict[str, list[int] | None]:
    shapes = entry.get("param_shapes")
    clean: dict[str, list[int] | None] = {}
    if isinstance(shapes, dict):
        for name, shape in list(shapes.items())[:32]:
            if isinstance(shape, list) and len(shape) <= 6 and all(isinstance(n, int) for n in shape):
                clean[str(name)] = shape
            else:
                clean[str(name)] = None
    return clean


@dataclass
class JobContext:
    """What the stage knows about the job as a whole, for messages about checks that never ran."""

    outcome: SandboxOutcome
    running: str  # id of the run in progress when the job ended ("" if unknown)
    import_message: str  # why spatial.py could not be imported ("" if it was)
    classes: dict[str, str | None]
    wall_seconds: float
    memory_bytes: int
    running_description: str = ""  # the run in progress, in the student's terms
    options: CatalogueOptions = DEFAULT_OPTIONS
    version_note: str = ""  # the file looks written for another course version: what changed (or "")
    # Reads the note off the file when a message first needs it (a failed construct or a missing class): reading
    # the course version walks the file's syntax tree, which a file whose checks all ran does not need.
    version_note_of: Callable[[], str] | None = field(default=None, repr=False)

    def note(self) -> str:
        """The course-version note (computed once, on first use)."""
        if self.version_note_of is not None:
            self.version_note, self.version_note_of = self.version_note_of(), None
        return self.version_note


def judge(check: Check, prepared: PreparedRun, harness: HarnessResult, job: JobContext) -> tuple[float, str, str]:
    """(fraction of the points earned, test status, feedback) for one check."""
    if job.import_message:
        return 0.0, "error", job.import_message
    if job.classes.get(check.component) is None and harness.record:
        return 0.0, "failed", _missing_text(check, job)
    entry = entry_of(harness.record, prepared.run.id)
    if entry is None:
        return _not_reached(prepared, job)
    status = entry.get("status")
    phase = entry.get("phase")
    got = harness.outputs_of(prepared.run.id)
    if status == "missing_class":
        return 0.0, "failed", _missing_text(check, job)
    if status == "skipped_after_timeout":
        return 0.0, "timeout", ("not run: an earlier case of this component did not finish within its time limit "
                                "(see the first check marked TIMEOUT).")
    failed = status in ("error", "timeout")
    if failed and phase != "backward":
        return _construct_or_forward_failure(check, prepared, entry, job)
    if status not in ("ok", "error", "timeout"):
        return 0.0, "error", "the harness could not run this case."
    if check.aspect == "backward":
        out, expected_out = got.get("out"), prepared.expected["out"]
        if out is not None and out.shape != expected_out.shape:
            return 0.0, "failed", (f"backward not checked: forward returned shape {tuple(out.shape)}, expected "
                                   f"{tuple(expected_out.shape)} (see the forward check of this case).")
        if failed:
            return 0.0, ("timeout" if status == "timeout" else "error"), _failure_text(entry, prepared)
    lines, passed = [], 0
    notes = entry.get("notes") if isinstance(entry.get("notes"), list) else []
    if "bias_zeros" in notes:
        lines.append("(Your Conv2D did not accept `layer.bias = None`; this case was graded with a zero bias.)")
    problems = []
    if check.aspect == "api":
        module = _component_module(check.component)
        problems = module.judge_api(prepared, got, {"param_shapes": _param_shapes(entry),
                                                    "param_list": _shape_list(entry.get("param_list")),
                                                    "param_walk": _shape_list(entry.get("param_walk"))})
        lines.extend(problems)
    for key in check.keys:
        if key == "x_after":
            continue
        ok, text = _judge_output(prepared, key, got.get(key), entry)
        passed += ok
        if text:
            lines.append(text)
    total = len([key for key in check.keys if key != "x_after"])
    if check.aspect == "api":
        fraction = 1.0 if not problems and passed == total else 0.0
    else:
        fraction = passed / total if total else 1.0
    status_out = "passed" if fraction == 1.0 else "failed"
    if fraction < 1.0 and check.component == "conv2d" and _param_shapes(entry).get("weight", []) is None:
        lines.append("Note: your Conv2D had no `weight` attribute before the grader set one. The grader assigns "
                     "`layer.weight` and `layer.bias` (as in the module text); forward must use those names.")
    return fraction, status_out, "\n".join(lines)


def _construct_or_forward_failure(check: Check, prepared: PreparedRun, entry: dict,
                                  job: JobContext) -> tuple[float, str, str]:
    """The judgement of a run that failed before backward: SimpleCNN's parameters, a version mismatch, or why."""
    status, phase = entry.get("status"), entry.get("phase")
    if check.component == "simplecnn" and phase == "construct" and "param_list" in entry:
        problems = parameter_problems(prepared.run.architecture, _shape_list(entry.get("param_list")),
                                      _shape_list(entry.get("param_walk")))
        if problems:
            return 0.0, "failed", "\n".join(problems)
    text = _failure_text(entry, prepared)
    if phase == "construct" and status == "error" and job.note():
        text += "\n" + job.note()
    return 0.0, ("timeout" if status == "timeout" else "error"), text


def _missing_text(check: Check, job: JobContext) -> str:
    names = " or ".join(job.options.names(check.component))
    kind = "function" if check.run.call == "function" else "class"
    text = f"spatial.py defines no {kind} {names}. Expected classes: {expected_classes(job.options)}."
    return f"{text}\n{job.note()}" if job.note() else text


def _component_module(component: str):
    from grader.checks import _component_modules

    return _component_modules()[component]


OUTPUT_NAMES = {"out": "forward output", "dx": "x.grad (input gradient)"}


def _output_name(key: str) -> str:
    if key in OUTPUT_NAMES:
        return OUTPUT_NAMES[key]
    return f"{key[5:]}.grad" if key.startswith("grad/") else key


def _judge_output(prepared: PreparedRun, key: str, got: np.ndarray | None, entry: dict) -> tuple[bool, str]:
    expected = prepared.expected.get(key)
    if expected is None:
        return True, ""
    name = _output_name(key)
    if got is None:
        unreadable = entry.get("unreadable")
        reason = _text(unreadable.get(key)) if isinstance(unreadable, dict) else ""
        if reason:
            return False, f"{name}: could not be read as an array of numbers: {reason}"
        if key == "dx":
            return False, (f"{name}: x.grad is None after out.backward(G): the gradient never reached the input. "
                           "Build the output from x with Tensor operations that record a grad function.")
        if key.startswith("grad/"):
            return False, (f"{name}: is None after out.backward(G): the gradient never reached this parameter. "
                           f"Use self.{key[5:].split('.')[-1]} (the Tensor the grader assigned) in forward.")
        return False, f"{name}: forward returned nothing usable (expected a Tensor of shape {tuple(expected.shape)})."
    allowed = prepared.tolerances.get(key)
    if allowed is None and got.shape == expected.shape and expected.size:
        allowed = prepared.tolerances[key] = tolerance(expected, prepared.run.dtype)
    result = compare(expected, got, prepared.run.dtype, allowed)
    if result.ok:
        return True, ""
    text = f"{name}: {result.message}."
    cause = diagnose(prepared, key, got)
    if cause:
        text += f"\n  Likely cause: {cause}"
    return False, text


def _failure_text(entry: dict, prepared: PreparedRun) -> str:
    phase = entry.get("phase") if entry.get("phase") in ("construct", "forward", "backward") else "forward"
    what = {"construct": "constructing the layer", "forward": "forward", "backward": "out.backward(G)"}[phase]
    if entry.get("status") == "timeout":
        return (f"{what} did not finish within {prepared.run.time_limit_s:g} s on this case "
                f"(an infinite loop, or very slow code?).")
    error = _text(entry.get("error")) or "an exception"
    text = f"{what} raised {error}{_where(entry)}"
    out_type = _text(entry.get("out_type"), 60)
    if phase == "backward" and out_type and out_type != "Tensor":
        text += f"\n  forward returned a {out_type}, not a Tensor, so the gradient cannot flow back to x."
    return text


def _not_reached(prepared: PreparedRun, job: JobContext) -> tuple[float, str, str]:
    outcome = job.outcome
    here = job.running == prepared.run.id
    where = f" while running {job.running_description}" if job.running_description else ""
    if outcome.status == "timeout":
        if here:
            return 0.0, "timeout", (f"your code did not finish: the correctness stage stopped at its limit of "
                                    f"{job.wall_seconds:g} s while running this case.")
        return 0.0, "timeout", f"not reached: the correctness stage stopped at its limit of {job.wall_seconds:g} s{where}."
    if outcome.status == "memory":
        return 0.0, "error", f"not reached: your code used more than {job.memory_bytes / GiB:g} GiB of memory{where}."
    if outcome.status == "output_limit":
        return 0.0, "error", f"not reached: your code wrote more output than allowed{where}."
    if outcome.status == "crashed":
        return 0.0, "error", f"not reached: the Python process crashed (e.g. a segmentation fault){where}."
    if outcome.status == "exited":
        return 0.0, "error", (f"not reached: the process exited with code {outcome.exit_code}{where} "
                              f"(does spatial.py call sys.exit(), exit() or os._exit()?).")
    return 0.0, "error", (f"not reached: your process exited before this check ran{where} "
                          f"(does spatial.py call os._exit()?).")


def import_failed(record: dict) -> bool:
    info = record.get("import") if record else None
    return bool(record) and not (isinstance(info, dict) and info.get("status") == "ok")


def tests_at_import_note(record: dict) -> str:
    """"Your file runs tests at import and one failed: ..." (or "" when none failed)."""
    info = record.get("import")
    failures = info.get("tests_failed") if isinstance(info, dict) else None
    if not isinstance(failures, list) or not failures or not isinstance(failures[0], dict):
        return ""
    first = failures[0]
    line = first.get("statement_line") if isinstance(first.get("statement_line"), int) else None
    statement = (_text(first.get("statement"), 120).strip().splitlines() or [""])[0]
    where = f" (line {line}: `{statement}`)" if line and statement else ""
    more = f" ({len(failures)} test calls failed)" if len(failures) > 1 else ""
    return (f"Your file runs tests at import and one failed{where}: {_text(first.get('message'), 300)}{more}. "
            "The grader skipped it and graded your classes; move test calls under `if __name__ == '__main__':`.")


def import_message(record: dict) -> str:
    info = record.get("import")
    if not isinstance(info, dict):
        return "your process exited before the checks ran (does spatial.py call sys.exit() or os._exit()?)."
    if info.get("status") == "ok":
        return ""
    kind, message = _text(info.get("kind"), 40), _text(info.get("message"))
    line = info.get("line") if isinstance(info.get("line"), int) else None
    if kind == "empty":
        return "spatial.py is empty. Expected classes: " + EXPECTED_CLASSES + "."
    if kind == "binary":
        return "spatial.py is not a text file (it contains NUL bytes). Upload the Python source file."
    if kind == "encoding":
        return f"spatial.py is not valid UTF-8 text (first bad byte on line {line}). Save the file as UTF-8."
    if kind == "syntax":
        text = _text(info.get("text"), 200)
        shown = f": `{text.strip()}`" if text and text.strip() else ""
        return f"spatial.py has a syntax error on line {line}{shown}: {message}"
    if kind == "import":
        module = _text(info.get("module"), 100)
        hint = (" Only the standard library, numpy and the course's tinytorch package are available "
                "(no torch, no scipy).")
        missing = f" Missing module: {module}." if module else ""
        return f"spatial.py could not be imported{_line_of(info)}: {message}.{hint}{missing}"
    if kind == "exit":
        return (f"spatial.py called sys.exit() or exit() while being imported{_line_of(info)}, so the checks could "
                "not run. Move test code under `if __name__ == '__main__':`.")
    if kind == "timeout":
        return f"importing spatial.py did not finish: {message}. Does it run long code at module level?"
    return (f"importing spatial.py raised {message}{_line_of(info)}. "
            "Move test code under `if __name__ == '__main__':`.")


def _line_of(info: dict) -> str:
    line = info.get("line")
    if isinstance(line, list) and line and isinstance(line[0], int):
        return f" (spatial.py line {line[0]})"
    return ""


def preflight(source: bytes) -> str:
    """A message when the file cannot be Python source at all (checked here, before any sandbox run)."""
    if not source.strip():
        return "spatial.py is empty. Expected classes: " + EXPECTED_CLASSES + "."
    if b"\x00" in source:
        return "spatial.py is not a text file (it contains NUL bytes). Upload the Python source file."
    try:
        source.decode("utf-8")
    except UnicodeDecodeError as error:
        line = source[: error.start].count(b"\n") + 1
        return f"spatial.py is not valid UTF-8 text (first bad byte on line {line}). Save the file as UTF-8."
    return ""


def job_message(outcome: SandboxOutcome, limits, job: JobContext) -> str:
    where = f" while running {job.running_description}" if job.running_description else ""
    if outcome.status == "timeout":
        return f"your code did not finish within the correctness stage's limit of {limits.wall_seconds:g} s{where}."
    if outcome.status == "memory":
        return f"your code used more than {limits.memory_bytes / GiB:g} GiB of memory{where}."
    if outcome.status == "output_limit":
        return f"your code wrote more output than allowed{where}."
    if outcome.status == "crashed":
        return f"the Python process running your code crashed (e.g. a segmentation fault){where}."
    if outcome.status == "exited":
        return (f"the process exited with code {outcome.exit_code}{where} before the checks finished "
                f"(does spatial.py call sys.exit(), exit() or os._exit()?).")
    return f"your process exited before the checks finished{where} (does spatial.py call os._exit()?)."
