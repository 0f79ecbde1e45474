"""The training stage (`cifar10` in the spec): train the student's layers in the sandbox, judge the weights outside.

The sandbox gets the recipe, the initial parameters (drawn here from the spec's seed) and a read-only mount of
the training images and labels; the test images and labels stay here. It hands back progress lines
(validated in grader/training/progress.py, shown to the student, never used for the grade) and the trained
parameters as an .npz. The grade is the test accuracy that `reference.simple_cnn.predict` computes here from those
parameters (grader/training/judging.py).
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import numpy as np

from grader.datasets.cifar10 import PreparedCifar10
from grader.spec import Spec
from grader.stages import StageContext, StageOutput
from grader.training.evaluation import ensure_dataset
from grader.training.judging import STAGE, failed_output, judge_outcome
from grader.training.progress import ProgressLog, parse_progress_line
from grader.training.recipe import DEFAULT_OPTIONS, StageConfig
from reference import simple_cnn
from sandbox.runner import SandboxJob

HARNESS = "training"
MAX_KEPT_EVENTS = 20000


def max_score(spec: Spec) -> float:
    return float(spec.stages.get(STAGE, {}).get("max_score", DEFAULT_OPTIONS["max_score"]))


def build_job(source: bytes, config: StageConfig, prepared: PreparedCifar10) -> SandboxJob:
    """The sandbox job: recipe + initial parameters as inputs, the sandbox half of the cache as data."""
    recipe = config.recipe
    init = simple_cnn.init_params(int(recipe["seed"]), architecture=config.network,
                                   scheme=str(recipe.get("init", "pytorch")))
    buffer = io.BytesIO()
    np.savez(buffer, **init)
    inputs = {"recipe.json": json.dumps(recipe, sort_keys=True).encode(), "init.npz": buffer.getvalue()}
    return SandboxJob(harness=HARNESS, submission=source, inputs=inputs,
                      data_dirs={"cifar10": prepared.sandbox_dir}, limits=config.limits)


class ProgressRelay:
    """Validates the job's progress lines, keeps them in a ProgressLog and passes them on as stage events."""

    def __init__(self, context: StageContext, total_epochs: int) -> None:
        self.context, self.total_epochs = context, total_epochs
        self.log = ProgressLog()
        self.total_steps = 0

    def __call__(self, line: str) -> None:
        event = parse_progress_line(line)
        if event is None:
            self.log.rejected += 1
            return
        if len(self.log.events) < MAX_KEPT_EVENTS:
            self.log.events.append(event)
        if event["event"] == "start" and event.get("batches"):
            self.total_steps = int(event["batches"]) * self.total_epochs
        if event["event"] == "batch" and self.total_steps:
            self.context.emit(self._batch_event(event))
        elif event["event"] in ("epoch", "probe", "stopped", "done"):
            self.context.emit({"type": "progress", "stage": STAGE, "epochs": self.total_epochs,
                               **{k: v for k, v in event.items() if k != "layers"}})

    def _batch_event(self, event: dict[str, Any]) -> dict[str, Any]:
        done = (event.get("epoch", 1) - 1) * event.get("batches", 0) + event.get("batch", 0)
        eta = event.get("projected_s", 0) - event.get("elapsed_s", 0) if event.get("projected_s") else None
        return {"type": "progress", "stage": STAGE, "done": done, "total": self.total_steps,
                "running": f"epoch {event.get('epoch')}/{self.total_epochs} loss {event.get('loss', 0):.3f} "
                           f"train acc {event.get('train_accuracy', 0):.1%}"
                           + (f", about {eta / 60:.0f} min left" if eta is not None else ""),
                **{k: v for k, v in event.items() if k != "event"}}


def run_stage(context: StageContext) -> StageOutput:
    """Train in the sandbox, then grade the handed-back weights by test accuracy computed here.

    The flow (grader/pipeline.py) runs this stage only when the layers it trains with passed their checks.
    """
    started = time.monotonic()
    settings = context.settings
    try:
        config = StageConfig.from_spec(context.spec.stages.get(STAGE, {}), settings,
                                       architecture=context.spec.architecture,
                                       flatten=context.spec.correctness.flatten)
    except (ValueError, TypeError) as error:
        return failed_output(started, DEFAULT_OPTIONS["max_score"], "error",
                             f"the CIFAR-10 stage is misconfigured: {error}")
    prepared = ensure_dataset(settings)
    relay = ProgressRelay(context, int(config.recipe["epochs"]))
    outcome = context.runner.run(build_job(context.source, config, prepared), on_progress=relay)
    return judge_outcome(outcome, relay.log, config, prepared, context.source, started)
