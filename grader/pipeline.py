"""The grading flow: which stages exist, which may run, and how their results add up. No database here.

`grader grade` calls `grade_submission` (every stage in one process). A Celery worker calls `grade_stage` for the
one stage its queue runs, then `advance` to learn the next stage; it adds only the claim, the persistence and the
hand-off to the next queue (grader/tasks.py). Both therefore gate, merge and rank statuses with the same code:

- Registry: `STAGES` names each stage's module (grader/stages/<module>.py, imported when first used, so a stage's
  dependencies load only if it runs) and the components whose correctness checks must all pass before it runs
  (a spec section's `requires = [...]` overrides them; `requires = []` runs the stage whatever correctness found).
- Gating: a stage that may not run is recorded as `skipped`, with its points in the maximum and a message.
- Merging: scores add up, stages and tests are concatenated (`merge`); the status follows the one precedence
  rule in grader/result.py (`error` > `timeout` > `graded`).

Student mistakes of every kind (malformed file, crash, timeout) come back as a GradingResult. Only
`InfrastructureError` (sandbox engine unreachable, image missing) propagates: it is not the student's fault and
the caller retries it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable, Iterable

from grader import __version__
from grader.result import GradingResult, StageResult
from grader.settings import Settings, get_settings
from grader.spec import Spec, load_spec
from grader.stages import EventCallback, StageContext, StageOutput
from grader.kits import runner_for
from sandbox.runner import SandboxRunner


@dataclass(frozen=True)
class RegisteredStage:
    """A stage the flow can run: its module (with `run_stage` and `max_score`) and its default requirements."""

    module: str
    requires: tuple[str, ...] = ()

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


STAGES: dict[str, RegisteredStage] = {
    "correctness": RegisteredStage("grader.stages.correctness"),
    "cifar10": RegisteredStage("grader.stages.training", requires=("conv2d", "maxpool2d", "flatten", "simplecnn")),
}


def stage_max(name: str, spec: Spec) -> float:
    """A stage's maximum without running it (its module's `max_score(spec)`)."""
    return float(STAGES[name].load().max_score(spec))


def requirements(name: str, spec: Spec) -> tuple[str, ...]:
    """The components whose correctness checks must all pass before stage `name` runs."""
    section = spec.stages.get(name, {})
    return tuple(section.get("requires", STAGES[name].requires if name in STAGES else ()))


def blocker(name: str, spec: Spec, so_far: GradingResult | None) -> str:
    """Why stage `name` may not run after the stages in `so_far` (empty when it may).

    Without a correctness result (a stage graded on its own, `grader grade --stages cifar10`) nothing is gated.
    """
    required = requirements(name, spec)
    correctness = next((stage for stage in so_far.stages if stage.name == "correctness"), None) if so_far else None
    if not required or correctness is None:
        return ""
    failing = sorted({test.name.split(".")[0] for test in so_far.tests
                      if test.status != "passed" and test.name.split(".")[0] in required})
    if not failing and correctness.status == "graded":
        return ""
    which = ", ".join(failing) if failing else "the correctness stage"
    return (f"Skipped: training needs correct layers, and {which} did not pass every correctness check. "
            "Fix those first and submit again.")


def skipped(name: str, spec: Spec, reason: str) -> StageOutput:
    """The output of a stage that did not run: no points, its maximum still counted, the reason as message."""
    return StageOutput(StageResult(name=name, score=0.0, max_score=stage_max(name, spec), status="skipped",
                                   duration_s=0.0, message=reason), extra={name: {"skipped": reason}})


def merge(earlier: GradingResult | None, output: StageOutput) -> GradingResult:
    """`earlier` (the stages graded so far, or None) followed by one more stage's output."""
    stages = (earlier.stages if earlier else []) + [output.result]
    tests = (earlier.tests if earlier else []) + output.tests
    extra = {**(earlier.extra if earlier else {}), **output.extra}
    return GradingResult.of_stages(stages, tests, grader_version=__version__, extra=extra)


def grade_stage(source: bytes, name: str, *, spec: Spec, runner: SandboxRunner, earlier: GradingResult | None = None,
                on_event: EventCallback | None = None, settings: Settings | None = None) -> GradingResult:
    """Run stage `name` (not gated: `advance` decided it may run) and merge it after `earlier`."""
    context = StageContext(source=source, spec=spec, runner=runner, settings=settings or get_settings(),
                           on_event=on_event)
    return _run_stage(name, context, earlier)


def advance(spec: Spec, result: GradingResult, finished: str, *, stages: Iterable[str] | None = None,
            refuse: Callable[[str], str] | None = None,
            on_event: EventCallback | None = None) -> tuple[GradingResult, str | None]:
    """After stage `finished`: the next stage to run (None when the run is complete), and `result` with every
    stage before it that may not run recorded as skipped.

    Args:
        stages: the stages of this run in order (default: the spec's).
        refuse: a caller's own reason not to run a stage (e.g. the worker's daily training ration), "" to allow.
        on_event: receives stage_started / stage_finished for the stages skipped here.
    """
    names = list(spec.stage_names if stages is None else stages)
    later = names[names.index(finished) + 1:] if finished in names else []
    for name in later:
        reason = blocker(name, spec, result) or (refuse(name) if refuse else "")
        if not reason:
            return result, name
        _emit(on_event, {"type": "stage_started", "stage": name})
        output = skipped(name, spec, reason)
        result = merge(result, output)
        _emit(on_event, _finished_event(output))
    return result, None


def grade_submission(source: bytes, *, spec: Spec | None = None, stages: Iterable[str] | None = None,
                     runner: SandboxRunner | None = None, on_event: EventCallback | None = None,
                     settings: Settings | None = None) -> GradingResult:
    """Grade one spatial.py through every stage, in one process.

    Args:
        source: the file's bytes as uploaded.
        spec: the assignment spec (default: grader/specs/default.toml).
        stages: names of the stages to run, in the spec's order (default: every stage of the spec).
        runner: the sandbox backend (default: `runner_for(spec, settings)`: sandbox.select's choice, with the
            spec's uploaded kit if it names one).
        on_event: receives dict events: stage_started, progress, stage_finished.
        settings: defaults to `get_settings()`.

    Returns:
        The GradingResult; score 0 with a message for files that cannot be graded.
    """
    settings = settings or get_settings()
    spec = spec or load_spec()
    wanted = _wanted_stages(spec, stages)
    if len(source) > settings.submission_max_bytes:
        return _too_large(source, spec, wanted, settings)
    context = StageContext(source=source, spec=spec, runner=runner or runner_for(spec, settings), settings=settings,
                           on_event=on_event)
    result: GradingResult | None = None
    name: str | None = wanted[0] if wanted else None
    while name is not None:
        result = _run_stage(name, context, result)
        result, name = advance(spec, result, name, stages=wanted, on_event=on_event)
    return result or GradingResult.of_stages([], [], grader_version=__version__)


def _wanted_stages(spec: Spec, stages: Iterable[str] | None) -> list[str]:
    if stages is None:
        return list(spec.stage_names)
    chosen = set(stages)
    unknown = chosen - set(spec.stage_names)
    if unknown:
        raise ValueError(f"unknown stage(s) {', '.join(sorted(unknown))}; this spec has {', '.join(spec.stage_names)}")
    return [name for name in spec.stage_names if name in chosen]


def _run_stage(name: str, context: StageContext, earlier: GradingResult | None) -> GradingResult:
    context.emit({"type": "stage_started", "stage": name})
    output = STAGES[name].load().run_stage(context)
    context.previous[name] = output
    context.emit(_finished_event(output))
    return merge(earlier, output)


def _finished_event(output: StageOutput) -> dict:
    return {"type": "stage_finished", "stage": output.result.name, "status": output.result.status,
            "score": output.result.score, "max_score": output.result.max_score}


def _emit(on_event: EventCallback | None, event: dict) -> None:
    if on_event is not None:
        on_event(event)


def _too_large(source: bytes, spec: Spec, wanted: list[str], settings: Settings) -> GradingResult:
    limit = settings.submission_max_bytes
    reason = (f"spatial.py is {len(source) // 1024} KiB; the limit is {limit // 1024} KiB. "
              f"Upload only your source file.")
    total = sum(stage_max(name, spec) for name in wanted)
    result = GradingResult.failed(reason, max_score=total, grader_version=__version__)
    result.stages = [StageResult(name=name, score=0.0, max_score=stage_max(name, spec), status="error",
                                 duration_s=0.0, message=reason) for name in wanted]
    return result
