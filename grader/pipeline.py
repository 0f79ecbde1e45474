"""Grade one submission: the function `grader grade` and the Celery workers call.

Stages run in the spec's order (`[stages.*]` sections). A stage is a function `run_stage(StageContext) ->
StageOutput` registered here by name; the CIFAR-10 stage lives in `grader/cifar10.py` and is skipped, with a
message, unless the components it trains with passed every correctness check.

Student mistakes of every kind (malformed file, crash, timeout) come back as a GradingResult. Only
`InfrastructureError` (sandbox engine unreachable, image missing) propagates: it is not the student's fault and
the caller retries it.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterable

from grader import __version__
from grader.result import GradingResult, StageResult
from grader.settings import Settings, get_settings
from grader.spec import Spec, load_spec
from grader.stage import EventCallback, StageContext, StageOutput
from sandbox.runner import SandboxRunner

StageFunction = Callable[[StageContext], StageOutput]

# name -> "module:function", imported when first used so a stage's dependencies load only if it runs.
STAGES: dict[str, str] = {
    "correctness": "grader.stages.correctness:run_stage",
    "cifar10": "grader.stages.training:run_stage",
}
# Components whose correctness checks must all pass before a stage may run (overridable in the spec section
# as `requires = [...]`).
DEFAULT_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "cifar10": ("conv2d", "maxpool2d", "flatten", "simplecnn"),
}
UNSAFE_BACKEND = "unsafe-subprocess"


def register_stage(name: str, target: str | StageFunction) -> None:
    """Add or replace a stage (a "module:function" path or the function itself)."""
    STAGES[name] = target  # type: ignore[assignment]


def _stage_function(name: str) -> StageFunction:
    target = STAGES[name]
    if callable(target):
        return target
    module_name, _, function = target.partition(":")
    return getattr(importlib.import_module(module_name), function)


def select_runner(settings: Settings, backend: str | None = None) -> SandboxRunner:
    """The sandbox backend to use: the one named, else the settings' choice (docker > bwrap > refuse).

    The unsafe subprocess backend is used only when named explicitly ("unsafe-subprocess"), never as a fallback.
    """
    backend = backend or settings.sandbox_backend
    if backend == UNSAFE_BACKEND:
        from sandbox.subprocess_backend import SubprocessRunner

        return SubprocessRunner()
    from sandbox import select

    if backend != settings.sandbox_backend:
        settings = settings.model_copy(update={"sandbox_backend": backend})
    return select.select_runner(settings)


def grade_submission(source: bytes, *, spec: Spec | None = None, stages: Iterable[str] | None = None,
                     runner: SandboxRunner | None = None, on_event: EventCallback | None = None,
                     settings: Settings | None = None) -> GradingResult:
    """Grade one spatial.py.

    Args:
        source: the file's bytes as uploaded.
        spec: the assignment spec (default: grader/specs/default.toml).
        stages: names of the stages to run, in the spec's order (default: every stage of the spec).
        runner: the sandbox backend (default: `select_runner(settings)`).
        on_event: receives dict events: stage_started, progress, stage_finished.
        settings: defaults to `get_settings()`.

    Returns:
        The GradingResult; score 0 with a message for files that cannot be graded.
    """
    settings = settings or get_settings()
    spec = spec or load_spec()
    wanted = list(spec.stage_names) if stages is None else [name for name in spec.stage_names if name in set(stages)]
    unknown = set(stages or ()) - set(spec.stage_names)
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(sorted(unknown))}; this spec has {', '.join(spec.stage_names)}")
    if len(source) > settings.submission_max_bytes:
        return _too_large(source, spec, wanted, settings)
    runner = runner or select_runner(settings)
    context = StageContext(source=source, spec=spec, runner=runner, settings=settings, on_event=on_event)
    outputs: list[StageOutput] = []
    for name in wanted:
        context.emit({"type": "stage_started", "stage": name})
        blocker = _blocked_by(name, spec, context.previous)
        if blocker:
            output = StageOutput(StageResult(name=name, score=0.0, max_score=_stage_max(name, spec), status="skipped",
                                             duration_s=0.0, message=blocker), extra={name: {"skipped": blocker}})
        else:
            output = _stage_function(name)(context)
        context.previous[name] = output
        outputs.append(output)
        context.emit({"type": "stage_finished", "stage": name, "status": output.result.status,
                      "score": output.result.score, "max_score": output.result.max_score})
    return _assemble(outputs)


def _blocked_by(name: str, spec: Spec, previous: dict[str, StageOutput]) -> str:
    """Why a stage may not run (empty when it may)."""
    section = spec.stages.get(name, {})
    required = tuple(section.get("requires", DEFAULT_REQUIREMENTS.get(name, ())))
    if not required:
        return ""
    correctness = previous.get("correctness")
    if correctness is None:
        return ""  # run on its own (a worker's per-stage call): the caller already gated it on correctness
    failing = sorted({test.name.split(".")[0] for test in correctness.tests
                      if test.status != "passed" and test.name.split(".")[0] in required})
    if failing or correctness.result.status != "graded":
        which = ", ".join(failing) if failing else "the correctness stage"
        return (f"skipped: training needs correct layers, and {which} did not pass every correctness check. "
                f"Fix those first.")
    return ""


def _stage_max(name: str, spec: Spec) -> float:
    """A stage's maximum without running it: its module's `max_score(spec)`, else `max_score` in its section."""
    target = STAGES.get(name)
    if isinstance(target, str):
        module = importlib.import_module(target.partition(":")[0])
        if callable(getattr(module, "max_score", None)):
            return float(module.max_score(spec))
    value = spec.stages.get(name, {}).get("max_score", 0.0)
    return float(value) if isinstance(value, (int, float)) else 0.0


def _assemble(outputs: list[StageOutput]) -> GradingResult:
    stages = [output.result for output in outputs]
    tests = [test for output in outputs for test in output.tests]
    statuses = {stage.status for stage in stages}
    status = "timeout" if "timeout" in statuses else "error" if "error" in statuses else "graded"
    messages = [f"{stage.name}: {stage.message}" for stage in stages if stage.message]
    result = GradingResult(score=round(sum(stage.score for stage in stages), 6),
                           max_score=round(sum(stage.max_score for stage in stages), 6), status=status,
                           stages=stages, tests=tests, grader_version=__version__, message="\n".join(messages))
    for output in outputs:
        result.extra.update(output.extra)
    return result


def _too_large(source: bytes, spec: Spec, wanted: list[str], settings: Settings) -> GradingResult:
    limit = settings.submission_max_bytes
    reason = (f"spatial.py is {len(source) // 1024} KiB; the limit is {limit // 1024} KiB. "
              f"Upload only your source file.")
    total = sum(_stage_max(name, spec) for name in wanted)
    result = GradingResult.failed(reason, max_score=total, grader_version=__version__)
    result.stages = [StageResult(name=name, score=0.0, max_score=_stage_max(name, spec), status="error",
                                 duration_s=0.0, message=reason) for name in wanted]
    return result
