"""When a training run's end is the grading machine's fault, not the student's.

A run whose cost in reference seconds is within budget but that this host cannot finish before the container's
wall limit (a loaded host the night before a deadline) is an infrastructure condition: it is rescheduled, never
graded `timeout`.
"""

from __future__ import annotations

from grader.training.progress import ProgressLog
from grader.training.recipe import StageConfig
from sandbox.runner import InfrastructureError, SandboxOutcome

HANG_SECONDS = 180.0  # no progress report for this long before the wall limit: the submission hung, not the host


def raise_if_host_too_slow(outcome: SandboxOutcome, log: ProgressLog, config: StageConfig) -> None:
    """InfrastructureError when the harness stopped for the host ("host_slow"), or the wall limit cut a run on budget.

    A wall-clock timeout counts as the host's only while the run was still reporting progress (a hang in the
    student's code reports nothing) and its last measured cost was within budget, with no thread of the student's
    beside the yardstick (`tainted`).
    """
    stopped = log.last("stopped")
    if stopped and stopped.get("reason") == "host_slow":
        raise InfrastructureError(
            f"this grading machine is too slow right now for a run the speed probe judged within budget "
            f"(load {stopped.get('load_factor', 0):.1f}x the reference machine, about "
            f"{stopped.get('projected_wall_s', 0) / 60:.0f} min of wall time projected against a "
            f"{config.limits.wall_seconds / 60:.0f}-minute limit)")
    if outcome.status != "timeout" or stopped or log.last("error") or log.last("done"):
        return
    probe = log.last("probe")
    last = next((e for e in reversed(log.events) if e["event"] in ("batch", "epoch")), None)
    if probe is None or probe.get("tainted") or last is None:
        return
    progressing = outcome.duration_s - float(last.get("elapsed_s", 0.0)) < HANG_SECONDS
    epoch = log.last("epoch")
    projected = probe.get("projected_s")
    if epoch and epoch.get("charged_s") is not None and epoch.get("epoch"):
        projected = epoch["charged_s"] / epoch["epoch"] * int(config.recipe["epochs"])
    if progressing and projected is not None and projected <= config.budget_seconds:
        raise InfrastructureError(
            f"training hit the {config.limits.wall_seconds / 60:.0f}-minute wall limit although its cost "
            f"({projected / 60:.0f} reference minutes) is within the {config.budget_seconds / 60:.0f}-minute "
            "budget: the grading machine is too slow right now")
