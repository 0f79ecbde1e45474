"""Judging a training job: its sandbox outcome and progress events become the training stage's result.

The score is the test accuracy computed here from the handed-back parameters, mapped onto the spec's bands;
nothing the job prints counts.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from grader import speed_probe
from grader.datasets.cifar10 import PreparedCifar10
from grader.result import StageResult, TestResult
from grader.stages import StageOutput
from grader.training.evaluation import test_accuracies
from grader.training.host import raise_if_host_too_slow
from grader.training.plotting import curve_image
from grader.training.progress import ProgressLog
from grader.training.recipe import StageConfig
from grader.training.reproducibility import reproducibility
from grader.training.weights import load_weights
from sandbox.runner import GiB, SandboxOutcome

STAGE = "cifar10"
TEST_NAME = "cifar10.accuracy.test_set"


def score_for(accuracy: float, config: StageConfig) -> float:
    """Full points at full_accuracy and above, linear from zero at partial_accuracy, zero below."""
    if accuracy >= config.full_accuracy:
        return config.max_score
    if accuracy < config.partial_accuracy:
        return 0.0
    fraction = (accuracy - config.partial_accuracy) / (config.full_accuracy - config.partial_accuracy)
    return round(config.max_score * fraction, 4)


def judge_outcome(outcome: SandboxOutcome, log: ProgressLog, config: StageConfig, prepared: PreparedCifar10,
                  source: bytes, started: float) -> StageOutput:
    """Turn the sandbox outcome and the progress events into the stage's result."""
    raise_if_host_too_slow(outcome, log, config)
    curve = log.curve()
    record = _training_record(log, config, curve)
    details: dict[str, Any] = {"sandbox_status": outcome.status, "backend": outcome.backend,
                               "sandbox_seconds": round(outcome.duration_s, 2), "rejected_progress_lines": log.rejected}
    status, messages = _job_verdict(outcome, log, config, record, details)
    params, problems = (None, []) if status == "timeout" else load_weights(outcome.result, config.network)
    score = 0.0
    if params is not None:
        accuracies = test_accuracies(params, prepared, config.recipe, config.test_subset, config.network)
        accuracy = accuracies["judged"]
        record["test_accuracy"] = round(accuracy, 4)
        record["plain_test_accuracy"] = round(accuracies["plain"], 4)
        score = score_for(accuracy, config)
        verdict = ("above" if accuracy >= config.full_accuracy else "below")
        how = ("computed by the grader from your trained weights"
               + (f", averaging each test image with its mirror image; {accuracies['plain']:.2%} on the images alone"
                  if "flip" in accuracies else ""))
        messages.insert(0, f"Test accuracy {accuracy:.2%} after {len(curve)} epoch(s), {verdict} the "
                           f"{config.full_accuracy:.0%} target ({how}).")
    elif status != "timeout":
        if problems and outcome.result:
            messages.append("the trained parameters were rejected: " + "; ".join(problems[:4]))
        elif not messages:
            messages.append("training produced no parameters.")
        status = "error"
    if config.test_subset:
        record["test_subset"] = config.test_subset
    if status == "error" and outcome.log_tail:
        details["log_tail"] = outcome.log_tail[-2000:]
    details["reproducibility"] = reproducibility(outcome, log.last("start") or {}, config, prepared, source)
    switch = log.last("data_parallel")  # whether batches were split over the job's threads (the last word)
    if switch:
        details["reproducibility"]["data_parallel"] = {k: v for k, v in switch.items() if k != "event"}
    if curve:
        details["curve_image"] = curve_image(curve, record["test_accuracy"], config.full_accuracy)
    details["cifar10"] = record
    return _stage_output(status, score, " ".join(messages), config, details, record, started)


def _training_record(log: ProgressLog, config: StageConfig, curve: list[dict]) -> dict[str, Any]:
    """The training record shown to the student (`details["cifar10"]`): epochs, times, the curve."""
    done, probe = log.last("done"), log.last("probe") or {}
    return {
        "test_accuracy": None, "epochs": len(curve), "epochs_planned": int(config.recipe["epochs"]),
        "train_seconds": (done or {}).get("train_s", curve[-1]["elapsed_s"] if curve else None),
        "projected_seconds": probe.get("projected_s"), "step_ms": probe.get("batch_ms"),
        "budget_seconds": config.budget_seconds, "curve": curve,
    }


def _job_verdict(outcome: SandboxOutcome, log: ProgressLog, config: StageConfig, record: dict[str, Any],
                 details: dict[str, Any]) -> tuple[str, list[str]]:
    """The stage status the job's own course decides ("timeout" when the speed probe stopped it) and messages."""
    stopped, error = log.last("stopped"), log.last("error")
    messages: list[str] = []
    status = "graded"
    if stopped and stopped.get("reason") == "speed":
        layers = (log.last("layers") or {}).get("layers", [])
        record["projected_seconds"] = stopped.get("projected_s")
        explanation = speed_probe.explain(stopped, layers, config.recipe["architecture"],
                                          batch_size=int(config.recipe["batch_size"]))
        details["speed_probe"] = explanation["rows"]
        messages.append(explanation["message"])
        status = "timeout"
    elif error:
        messages.append(_error_message(error))
    elif outcome.status == "timeout":
        messages.append(f"training did not finish within the hard limit of {config.limits.wall_seconds / 60:.0f} "
                        "minutes; the parameters of the last finished epoch were graded.")
    elif outcome.status == "memory":
        messages.append(f"training used more than {config.limits.memory_bytes / GiB:g} GiB of memory.")
    elif outcome.status not in ("ok",):
        messages.append(f"the training process ended abnormally ({outcome.status}).")
    if stopped and stopped.get("reason") == "budget":
        messages.append(f"training was stopped after epoch {stopped.get('epoch')} because it ran over the "
                        f"{config.budget_seconds / 60:.0f}-minute budget; those parameters were graded.")
    return status, messages


def _stage_output(status: str, score: float, message: str, config: StageConfig, details: dict[str, Any],
                  record: dict[str, Any], started: float) -> StageOutput:
    test_status = "passed" if score >= config.max_score else ("timeout" if status == "timeout" else "failed")
    if status == "error":
        test_status = "error"
    stage = StageResult(name=STAGE, score=score, max_score=config.max_score, status=status,  # type: ignore[arg-type]
                        duration_s=round(time.monotonic() - started, 3), message=message, details=details)
    test = TestResult(name=TEST_NAME, stage=STAGE, score=score, max_score=config.max_score,
                      status=test_status, output=message)  # type: ignore[arg-type]
    return StageOutput(result=stage, tests=[test], extra={"cifar10": record})


def _error_message(error: Mapping) -> str:
    kind = error.get("kind", "")
    text = error.get("message", "")
    if kind == "import":
        return f"spatial.py could not be imported for training: {text}"
    if kind == "diverged":
        return (f"the training loss became NaN or infinite in epoch {error.get('epoch')} (batch "
                f"{error.get('batch')}); check your backward pass for exploding or missing gradients.")
    if kind == "memory":
        return "training ran out of memory; avoid keeping large intermediate arrays alive between batches."
    where = "; ".join(error.get("where", [])[-3:])
    return f"training raised {text}" + (f" (at {where})" if where else "")


def failed_output(started: float, max_points: float, status: str, message: str) -> StageOutput:
    """The stage's result when it could not start (e.g. a misconfigured spec section)."""
    stage = StageResult(name=STAGE, score=0.0, max_score=float(max_points), status=status,  # type: ignore[arg-type]
                        duration_s=round(time.monotonic() - started, 3), message=message)
    test = TestResult(name=TEST_NAME, stage=STAGE, score=0.0, max_score=float(max_points),
                      status="error" if status == "error" else "failed", output=message)
    return StageOutput(result=stage, tests=[test], extra={"cifar10": {"test_accuracy": None, "skipped": message}})
