"""The correctness stage: run the catalogue's runs in the sandbox, validate what comes back, score every check.

Nothing from the sandbox is trusted: grader/correctness/result_file.py validates the result file and
grader/correctness/feedback.py reads the record field by field. Scores come only from comparisons made here
against the reference outputs, which never leave this process.
"""

from __future__ import annotations

import collections
import json
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any

from grader import course_versions, hidden_checks
from grader.checks import (CLASS_NAMES, DEFAULT_OPTIONS, CatalogueOptions, PreparedRun, all_runs, checks_of,
                           parameter_names, prepare)
from grader.correctness.feedback import (JobContext, entry_of, import_failed, import_message, job_message, judge,
                                         preflight, tests_at_import_note)
from grader.correctness.input_file import npz_with_index
from grader.correctness.result_file import HarnessResult, max_elements, parse_result
from grader.result import StageResult, TestResult
from grader.spec import Spec
from grader.stages import StageContext, StageOutput
from sandbox.runner import SandboxJob, SandboxOutcome

STAGE = "correctness"


@lru_cache(maxsize=8)
def prepared_runs(seed: int, case_seconds: tuple[tuple[str, float], ...] = (),
                  options: CatalogueOptions = DEFAULT_OPTIONS) -> tuple[PreparedRun, ...]:
    """Inputs and reference outputs of every run for a seed (cached: the same for every submission)."""
    overrides = dict(case_seconds)
    runs = [replace(run, time_limit_s=overrides.get(run.component, run.time_limit_s)) for run in all_runs(options)]
    return tuple(prepare(run, seed) for run in runs)


@lru_cache(maxsize=8)
def prepared_job_inputs(seed: int, case_seconds: tuple[tuple[str, float], ...] = (),
                        options: CatalogueOptions = DEFAULT_OPTIONS) -> dict[str, bytes]:
    """`job_inputs` of `prepared_runs` (cached: the same bytes for every submission; callers copy the dict)."""
    return job_inputs(prepared_runs(seed, case_seconds, options), options)


def job_inputs(runs: tuple[PreparedRun, ...], options: CatalogueOptions = DEFAULT_OPTIONS) -> dict[str, bytes]:
    """cases.json and arrays.npz for the harness: inputs only, never expected outputs (cases.json's "arrays" says
    where each array's data are in arrays.npz)."""
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
        if run.construct_of is not None:
            case["construct_of"] = run.construct_of
        if run.architecture is not None:
            case["param_shapes"] = {name: list(shape) for name, shape in run.architecture.parameter_shapes().items()}
        cases.append(case)
    data, index = npz_with_index(arrays)
    class_names = {component: list(options.names(component)) for component in CLASS_NAMES}
    return {"cases.json": json.dumps({"format": 1, "runs": cases, "class_names": class_names,
                                      "arrays": index}).encode(),
            "arrays.npz": data}


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
    cases = _running_cases(spec, checks)

    def on_progress(line: str) -> None:
        try:
            data = json.loads(line)
        except ValueError:
            return
        if isinstance(data, dict) and isinstance(data.get("run"), str) and data["run"] in by_id:
            if not progress_runs or progress_runs[-1] != data["run"]:
                progress_runs.append(data["run"])
                event = {"type": "progress", "stage": STAGE, "done": len(progress_runs) - 1, "total": len(runs),
                         "running": data["run"]}
                if cases.get(data["run"]):  # staff see the case; students its neutral label (grader/hidden_checks.py)
                    event[hidden_checks.RUNNING_CASE] = cases[data["run"]]
                context.emit(event)

    inputs = prepared_job_inputs(spec.correctness.seed, spec.correctness.case_seconds, options)
    # No feedback of this stage quotes the job's output (students' prints included), and the classification reads
    # the log only of a job that failed: a passing job's log is not fetched.
    job = SandboxJob(harness="correctness", submission=context.source, inputs=dict(inputs), limits=limits,
                     log_tail_when_ok=False)
    outcome = context.runner.run(job, on_progress=on_progress)
    harness = parse_result(outcome.result, by_id)
    running = progress_runs[-1] if progress_runs else ""
    job_context = JobContext(outcome=outcome, running=running, import_message="", classes=_classes(harness.record),
                             wall_seconds=limits.wall_seconds, memory_bytes=limits.memory_bytes,
                             running_description=by_id[running].run.describe() if running in by_id else "",
                             options=options, version_note_of=lambda: course_versions.mismatch_note(
                                 course_versions.recognise(context.source), spec.course, spec.architecture,
                                 options.flatten))
    if import_failed(harness.record):
        job_context.import_message = "\n".join(filter(None, [import_message(harness.record) if harness.record else "",
                                                             job_context.note()]))
    withheld = _described(cases.get(running), job_context.running_description)
    if not harness.record:
        text = job_message(outcome, limits, job_context)
        return _finish(context, checks, started, status="timeout" if outcome.status == "timeout" else "error",
                       stage_message=text, judged=[(0.0, "timeout" if outcome.status == "timeout" else "error", text)]
                       * len(checks), outcome=outcome, running_case=withheld)
    judged = [judge(check, prepared, harness, job_context) for check, prepared in checks]
    status, stage_message = _stage_status(outcome, harness, runs, limits, job_context)
    return _finish(context, checks, started, status=status, stage_message=stage_message, judged=judged,
                   outcome=outcome, running_case=withheld)


def _classes(record: dict) -> dict[str, str | None]:
    """The class names the harness found for each component (None where it reported something not a name)."""
    if not isinstance(record.get("classes"), dict):
        return {}
    return {component: (value if isinstance(value, str) else None)
            for component, value in record["classes"].items() if component in CLASS_NAMES}


def _running_cases(spec: Spec, checks) -> dict[str, dict[str, Any] | None]:
    """Run id -> what a reader needs to withhold that case from students (None for a visible case)."""
    visibilities = [spec.correctness.visibility_for(check.name) for check, _ in checks]
    counts = collections.Counter(prepared.run.id for _, prepared in checks)  # once, not a scan per run
    cases: dict[str, dict[str, Any] | None] = {}
    for index, (_, prepared) in enumerate(checks):
        run_id = prepared.run.id
        if run_id not in cases:
            cases[run_id] = hidden_checks.running_case(visibilities, index, counts[run_id])
    return cases


def _described(case: dict[str, Any] | None, description: str) -> dict[str, Any] | None:
    """The withheld case that was running when the job ended, with the text messages use for it."""
    return {**case, "text": description} if case and description else None


def _stage_status(outcome: SandboxOutcome, harness: HarnessResult, runs, limits, job: JobContext) -> tuple[str, str]:
    """(stage status, stage message) once the job has handed back a record."""
    if job.import_message:
        status, stage_message = "error", job.import_message
    elif outcome.status == "timeout":
        status, stage_message = "timeout", job_message(outcome, limits, job)
    elif outcome.status != "ok" or any(entry_of(harness.record, p.run.id) is None for p in runs):
        status, stage_message = "error", job_message(outcome, limits, job)
    else:
        status, stage_message = "graded", ""
    tests_note = tests_at_import_note(harness.record)
    return status, f"{stage_message} {tests_note}".strip() if tests_note else stage_message


def _finish(context: StageContext, checks, started: float, *, status: str, stage_message: str,
            judged: list[tuple[float, str, str]], outcome: SandboxOutcome | None = None,
            running_case: dict[str, Any] | None = None) -> StageOutput:
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
        # Full details for every check, hidden ones too: staff see them always and students once released
        # (api/presenters.py:visible_result decides); replacing them here left nothing to release.
        header = f"{prepared.run.describe()}"
        text = header if test_status == "passed" else f"{header}\n{output}".rstrip()
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
    if running_case:  # messages name this case; students see "a hidden check" instead (grader/hidden_checks.py)
        details[hidden_checks.RUNNING_CASE] = running_case
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

