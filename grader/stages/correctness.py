"""The correctness stage: run the catalogue's runs in the sandbox, validate what comes back, score every check.

Nothing from the sandbox is trusted. The result file is opened with zipfile and numpy.lib.format (no pickle),
each member's declared size, dtype (float64 only) and shape are checked before its data is read, the record is
parsed as JSON and read field by field with type checks. Scores come only from comparisons made here against
the reference outputs, which never leave this process.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from grader import course_versions
from grader.checks import (CLASS_NAMES, DEFAULT_OPTIONS, CatalogueOptions, Check, PreparedRun, all_runs, checks_of,
                           parameter_names, prepare)
from grader.checks.simplecnn import parameter_problems
from grader.diagnosis import compare, diagnose
from grader.result import StageResult, TestResult
from grader.spec import Spec
from grader.stages import StageContext, StageOutput
from sandbox.runner import GiB, SandboxJob, SandboxOutcome

STAGE = "correctness"
RECORD_MAX_BYTES = 1024 * 1024  # the JSON record inside result.bin
MAX_MEMBERS = 1000  # members of result.bin
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


@lru_cache(maxsize=8)
def prepared_runs(seed: int, case_seconds: tuple[tuple[str, float], ...] = (),
                  options: CatalogueOptions = DEFAULT_OPTIONS) -> tuple[PreparedRun, ...]:
    """Inputs and reference outputs of every run for a seed (cached: the same for every submission)."""
    overrides = dict(case_seconds)
    runs = [replace(run, time_limit_s=overrides.get(run.component, run.time_limit_s)) for run in all_runs(options)]
    return tuple(prepare(run, seed) for run in runs)


def max_elements(prepared: PreparedRun) -> int:
    """The most elements the grader accepts for one array of this run (generous, but bounded)."""
    largest = max([array.size for array in prepared.expected.values()] + [prepared.inputs["x"].size])
    return 4 * largest + 1000


def job_inputs(runs: tuple[PreparedRun, ...], options: CatalogueOptions = DEFAULT_OPTIONS) -> dict[str, bytes]:
    """cases.json and arrays.npz for the harness: inputs only, never expected outputs."""
    cases, arrays = [], {}
    for prepared in runs:
        run = prepared.run
        for name, value in prepared.inputs.items():
            if run.run_forward or name == "x":
                arrays[f"{run.id}/{name}"] = value
        params = {name: (f"{run.id}/{name}" if run.run_forward else None) for name in parameter_names(run)}
        if run.component == "conv2d" and not run.bias:
            params["bias"] = None
        case = {"id": run.id, "component": run.component, "init": dict(run.init), "x": f"{run.id}/x",
                "params": params, "grad": f"{run.id}/grad" if "backward" in run.aspects else None,
                "keep_input": run.keep_input, "forward": run.run_forward, "time_limit_s": run.time_limit_s,
                "max_elements": max_elements(prepared), "call": run.call}
        if run.architecture is not None:
            case["param_shapes"] = {name: list(shape) for name, shape in run.architecture.parameter_shapes().items()}
        cases.append(case)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    class_names = {component: list(options.names(component)) for component in CLASS_NAMES}
    return {"cases.json": json.dumps({"format": 1, "runs": cases, "class_names": class_names}).encode(),
            "arrays.npz": buffer.getvalue()}


# The untrusted result ---------------------------------------------------------------------------------------

@dataclass
class HarnessResult:
    """What could be read from result.bin; `problem` says why nothing could."""

    record: dict[str, Any] = field(default_factory=dict)
    arrays: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    problem: str = ""


def parse_result(data: bytes, runs: dict[str, PreparedRun]) -> HarnessResult:
    """Validate and load result.bin. Unknown members are ignored; bad ones are dropped (their checks fail)."""
    if not data:
        return HarnessResult(problem="empty")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return HarnessResult(problem="unreadable")
    if len(members) > MAX_MEMBERS:
        return HarnessResult(problem="unreadable")
    result = HarnessResult()
    for member in members:
        name = member.filename
        if not name.endswith(".npy"):
            continue
        key = name[:-4]
        if key == "record.json":
            array = _read_member(archive, member, np.dtype(np.uint8), RECORD_MAX_BYTES)
            if array is None or array.ndim != 1:
                return HarnessResult(problem="unreadable")
            try:
                record = json.loads(array.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                return HarnessResult(problem="unreadable")
            if not isinstance(record, dict):
                return HarnessResult(problem="unreadable")
            result.record = record
            continue
        run_id, _, output = key.partition("/")
        prepared = runs.get(run_id)
        if prepared is None or output not in _allowed_outputs(prepared):
            continue
        array = _read_member(archive, member, np.dtype(np.float64), max_elements(prepared) * 8)
        if array is not None:
            result.arrays[(run_id, output)] = array
    if not result.record:
        result.problem = "unreadable"
    return result


def _allowed_outputs(prepared: PreparedRun) -> set[str]:
    return {"out", "dx", "x_after"} | {f"grad/{name}" for name in parameter_names(prepared.run)}


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, dtype: np.dtype, max_bytes: int):
    """One .npy member, or None unless it is a plain array of `dtype` within `max_bytes`."""
    if member.file_size > max_bytes + 4096:
        return None
    try:
        with archive.open(member) as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, fortran, declared = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, fortran, declared = np.lib.format.read_array_header_2_0(handle)
            else:
                return None
            if declared != dtype or len(shape) > 6 or int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > max_bytes:
                return None
        with archive.open(member) as handle:
            array = np.lib.format.read_array(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, OverflowError, TypeError):
        return None
    if type(array) is not np.ndarray or array.dtype != dtype:
        return None
    return np.ascontiguousarray(array)


def _text(value: Any, limit: int = TEXT_MAX_CHARS) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _entry(record: dict, run_id: str) -> dict | None:
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


# Judging --------------------------------------------------------------------------------------------------

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


def judge(check: Check, prepared: PreparedRun, harness: HarnessResult, job: JobContext) -> tuple[float, str, str]:
    """(fraction of the points earned, test status, feedback) for one check."""
    if job.import_message:
        return 0.0, "error", job.import_message
    if job.classes.get(check.component) is None and harness.record:
        return 0.0, "failed", _missing_text(check, job)
    entry = _entry(harness.record, prepared.run.id)
    if entry is None:
        return _not_reached(prepared, job)
    status = entry.get("status")
    phase = entry.get("phase")
    got = {output: array for (run_id, output), array in harness.arrays.items() if run_id == prepared.run.id}
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
    if phase == "construct" and status == "error" and job.version_note:
        text += "\n" + job.version_note
    return 0.0, ("timeout" if status == "timeout" else "error"), text


def _missing_text(check: Check, job: JobContext) -> str:
    names = " or ".join(job.options.names(check.component))
    kind = "function" if check.run.call == "function" else "class"
    text = f"spatial.py defines no {kind} {names}. Expected classes: {expected_classes(job.options)}."
    return f"{text}\n{job.version_note}" if job.version_note else text


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
    result = compare(expected, got, prepared.run.dtype)
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


def _import_failed(record: dict) -> bool:
    info = record.get("import") if record else None
    return bool(record) and not (isinstance(info, dict) and info.get("status") == "ok")


def _tests_at_import(record: dict) -> str:
    """"Your file runs tests at import and one failed: ..." (or "" when none failed)."""
    info = record.get("import")
    failures = info.get("tests_failed") if isinstance(info, dict) else None
    if not isinstance(failures, list) or not failures or not isinstance(failures[0], dict):
        return ""
    first = failures[0]
    line = first.get("statement_line") if isinstance(first.get("statement_line"), int) else None
    statement = _text(first.get("statement"), 120).strip()
    where = f" (line {line}: `{statement}`)" if line and statement else ""
    more = f" ({len(failures)} test calls failed)" if len(failures) > 1 else ""
    return (f"Your file runs tests at import and one failed{where}: {_text(first.get('message'), 300)}{more}. "
            "The grader skipped it and graded your classes; move test calls under `if __name__ == '__main__':`.")


def _import_message(record: dict) -> str:
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


# The stage ------------------------------------------------------------------------------------------------

def run_stage(context: StageContext) -> StageOutput:
    """Run the correctness job in the sandbox and score every check of the catalogue."""
    started = time.monotonic()
    spec = context.spec
    options = spec.catalogue_options
    runs = prepared_runs(spec.correctness.seed, spec.correctness.case_seconds, options)
    by_id = {prepared.run.id: prepared for prepared in runs}
    checks = [(check, by_id[check.run.id]) for prepared in runs for check in checks_of(prepared.run)]
    limits = context.settings.sandbox_limits(**spec.correctness.limits)
    message = preflight(context.source)
    if message:
        return _finish(context, checks, started, status="error", stage_message=message,
                       judged=[(0.0, "error", message)] * len(checks))

    progress_runs: list[str] = []

    def on_progress(line: str) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            return
        if isinstance(data, dict) and isinstance(data.get("run"), str) and data["run"] in by_id:
            if not progress_runs or progress_runs[-1] != data["run"]:
                progress_runs.append(data["run"])
                done = len(progress_runs) - 1
                context.emit({"type": "progress", "stage": STAGE, "done": done, "total": len(runs),
                              "running": data["run"]})

    job = SandboxJob(harness="correctness", submission=context.source, inputs=job_inputs(runs, options),
                     limits=limits)
    outcome = context.runner.run(job, on_progress=on_progress)
    harness = parse_result(outcome.result, by_id)
    running = progress_runs[-1] if progress_runs else ""
    classes = {}
    if isinstance(harness.record.get("classes"), dict):
        classes = {component: (value if isinstance(value, str) else None)
                   for component, value in harness.record["classes"].items() if component in CLASS_NAMES}
    version_note = course_versions.mismatch_note(course_versions.recognise(context.source), spec.course,
                                                 spec.architecture, options.flatten)
    import_message = "\n".join(filter(None, [_import_message(harness.record) if harness.record else "",
                                              version_note])) if _import_failed(harness.record) else ""
    job_context = JobContext(outcome=outcome, running=running, import_message=import_message, classes=classes,
                             wall_seconds=limits.wall_seconds, memory_bytes=limits.memory_bytes,
                             running_description=by_id[running].run.describe() if running in by_id else "",
                             options=options, version_note=version_note)
    if not harness.record:
        text = _job_message(outcome, limits, job_context)
        return _finish(context, checks, started, status="timeout" if outcome.status == "timeout" else "error",
                       stage_message=text, judged=[(0.0, "timeout" if outcome.status == "timeout" else "error", text)]
                       * len(checks), outcome=outcome)
    judged = [judge(check, prepared, harness, job_context) for check, prepared in checks]
    status, stage_message = _stage_status(outcome, harness, runs, limits, job_context)
    return _finish(context, checks, started, status=status, stage_message=stage_message, judged=judged,
                   outcome=outcome)


def _stage_status(outcome: SandboxOutcome, harness: HarnessResult, runs, limits, job: JobContext) -> tuple[str, str]:
    """(stage status, stage message) once the job has handed back a record."""
    if job.import_message:
        status, stage_message = "error", job.import_message
    elif outcome.status == "timeout":
        status, stage_message = "timeout", _job_message(outcome, limits, job)
    elif outcome.status != "ok" or any(_entry(harness.record, p.run.id) is None for p in runs):
        status, stage_message = "error", _job_message(outcome, limits, job)
    else:
        status, stage_message = "graded", ""
    tests_note = _tests_at_import(harness.record)
    return status, f"{stage_message} {tests_note}".strip() if tests_note else stage_message


def _job_message(outcome: SandboxOutcome, limits, job: JobContext) -> str:
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


def _finish(context: StageContext, checks, started: float, *, status: str, stage_message: str,
            judged: list[tuple[float, str, str]], outcome: SandboxOutcome | None = None) -> StageOutput:
    spec: Spec = context.spec
    judged = _with_dependency_hint(checks, judged)
    points = [spec.correctness.points_for(check.name) for check, _ in checks]
    scale = 1.0
    if spec.correctness.max_score is not None and sum(points) > 0:
        scale = spec.correctness.max_score / sum(points)
    tests = []
    passed = 0
    for (check, prepared), check_points, (fraction, test_status, output) in zip(checks, points, judged):
        visibility = spec.correctness.visibility_for(check.name)
        max_score = round(check_points * scale, 6)
        passed += test_status == "passed"
        if visibility == "visible":
            header = f"{prepared.run.describe()}"
            text = header if test_status == "passed" else f"{header}\n{output}".rstrip()
        else:
            text = "Hidden check: " + {"passed": "passed.", "failed": "failed.", "error": "your code raised an error.",
                                       "timeout": "your code did not finish in time."}[test_status]
        tests.append(TestResult(name=check.name, stage=STAGE, score=round(max_score * fraction, 6), max_score=max_score,
                                status=test_status, visibility=visibility, output=text))
    score = round(sum(test.score for test in tests), 6)
    max_score = round(sum(test.max_score for test in tests), 6)
    summary = f"{passed} of {len(tests)} checks passed."
    message = f"{summary} {stage_message}".strip() if stage_message else summary
    details: dict[str, Any] = {"checks": len(tests), "passed": passed, "seed": spec.correctness.seed}
    if outcome is not None:
        details.update(backend=outcome.backend, sandbox_seconds=round(outcome.duration_s, 3),
                       sandbox_status=outcome.status)
    stage = StageResult(name=STAGE, score=score, max_score=max_score, status=status,
                        duration_s=round(time.monotonic() - started, 3), message=message, details=details)
    return StageOutput(result=stage, tests=tests)


def _with_dependency_hint(checks, judged: list[tuple[float, str, str]]) -> list[tuple[float, str, str]]:
    """Failing SimpleCNN checks point at the failing layers they are built from."""
    broken = sorted({check.component for (check, _), (_, status, _) in zip(checks, judged)
                     if status != "passed" and check.component in ("conv2d", "maxpool2d", "flatten")})
    if not broken:
        return judged
    names = {"conv2d": "Conv2D", "maxpool2d": "MaxPool2D", "flatten": "Flatten"}
    layers = " and ".join(names[c] for c in broken)
    hint = f"SimpleCNN is built from your layers: fix the failing checks of {layers} first."
    return [(fraction, status, f"{output}\n{hint}" if check.component == "simplecnn" and status != "passed"
             and check.aspect != "api" else output)
            for (check, _), (fraction, status, output) in zip(checks, judged)]


def max_score(spec: Spec) -> float:
    """The correctness stage's maximum, without running anything."""
    runs = prepared_runs(spec.correctness.seed, spec.correctness.case_seconds, spec.catalogue_options)
    points = [spec.correctness.points_for(check.name) for prepared in runs for check in checks_of(prepared.run)]
    if spec.correctness.max_score is not None and sum(points) > 0:
        return spec.correctness.max_score
    return round(sum(points), 6)

