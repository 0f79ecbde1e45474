"""CIFAR-10 stage (trusted side): train the student's layers in the sandbox, judge the weights outside.

The sandbox gets the recipe, the initial parameters (drawn here from the spec's seed) and a read-only mount of
the training images and labels plus the test images; the test labels stay here. It hands back progress lines
(validated below, shown to the student, never used for the grade) and the trained parameters as an .npz. The
grade is the test accuracy that `reference.simple_cnn.predict` computes here from those parameters.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import math
import platform
import time
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from grader.datasets.cifar10 import DatasetError, PreparedCifar10, open_prepared, prepare
from grader.result import StageResult, TestResult
from grader.settings import Settings
from grader.spec import Spec
from grader.stage import StageContext, StageOutput
from reference import simple_cnn
from sandbox.runner import GiB, InfrastructureError, SandboxJob, SandboxLimits, SandboxOutcome

STAGE = "cifar10"
HARNESS = "training"
TEST_NAME = "cifar10.accuracy.test_set"

# The recipe the harness follows. Chosen and measured in bench/cifar10_seeds.py and bench/cifar10_reference.py
# (figures in bench/results/): the reference layers clear 75% with margin in 12 epochs. `[stages.cifar10]` in the
# assignment spec overrides any key (nested tables merge).
DEFAULT_RECIPE: dict[str, Any] = {
    "seed": 0,
    "epochs": 12,
    "batch_size": 128,
    "optimizer": {"kind": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    "schedule": {"kind": "one_cycle", "peak_lr": 0.05, "pct_start": 0.3, "div_factor": 25.0,
                 "final_div_factor": 1e4},
    "label_smoothing": 0.1,
    "augmentation": {"crop_padding": 4, "horizontal_flip": True},
    # Per-channel statistics of the training images scaled to [0, 1] (shared/datasets/README.md, float64).
    "normalize": {"mean": [0.4913, 0.4821, 0.4465], "std": [0.2452, 0.2428, 0.2606]},
}
# Stage options that are not part of the harness recipe (defaults; the spec section overrides them).
DEFAULT_OPTIONS: dict[str, Any] = {
    "max_score": 40.0,
    "full_accuracy": 0.75,  # full points at or above this test accuracy
    "partial_accuracy": 0.60,  # linear partial credit from here up to full_accuracy; zero below
    "budget_seconds": None,  # projected-training-time budget; None: settings.training_budget_seconds
    "train_subset": None,  # tests only: train on this many images
    "max_batches_per_epoch": None,  # tests only
    "test_subset": None,  # tests only: evaluate on N evenly spaced test images
    "report_every_batches": 20,
    "probe": {"warmup_batches": 1, "batches": 4, "layer_seconds": 8.0, "profile_seconds": 50.0},
}
RECIPE_KEYS = set(DEFAULT_RECIPE) | {"train_subset", "max_batches_per_epoch", "report_every_batches", "probe"}
ARCHITECTURES = {"simple_cnn": [
    ["conv2d", "conv1", {"in_channels": 3, "out_channels": 32, "kernel_size": 3, "padding": 1}],
    ["relu", "relu1", {}],
    ["maxpool2d", "pool1", {"kernel_size": 2}],
    ["conv2d", "conv2", {"in_channels": 32, "out_channels": 64, "kernel_size": 3, "padding": 1}],
    ["relu", "relu2", {}],
    ["maxpool2d", "pool2", {"kernel_size": 2}],
    ["flatten", "flatten", {}],
    ["linear", "fc1", {"in_features": 4096, "out_features": 128}],
    ["relu", "relu3", {}],
    ["linear", "fc2", {"in_features": 128, "out_features": 10}],
]}
PROGRESS_LINE_BYTES = 4096  # longest accepted progress line
MAX_CURVE_EPOCHS = 500
WEIGHTS_MAX_MEMBERS = 16
WEIGHTS_MAX_MEMBER_BYTES = 8 * 1024**2  # the largest parameter (fc1.weight, float64) is 4 MiB + header


def _merge(base: dict, override: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_recipe(overrides: Mapping | None = None) -> dict:
    """The default recipe with overrides applied (only recipe keys)."""
    return _merge(DEFAULT_RECIPE, {k: v for k, v in (overrides or {}).items() if k in DEFAULT_RECIPE})


@dataclass(frozen=True)
class StageConfig:
    """The stage's section of the spec, resolved against defaults and settings."""

    recipe: dict
    architecture: str
    max_score: float
    full_accuracy: float
    partial_accuracy: float
    budget_seconds: float
    test_subset: int | None
    limits: SandboxLimits

    @classmethod
    def from_spec(cls, section: Mapping, settings: Settings) -> "StageConfig":
        options = _merge(DEFAULT_OPTIONS, {k: v for k, v in section.items() if k in DEFAULT_OPTIONS})
        recipe = _merge(DEFAULT_RECIPE, {k: v for k, v in section.items() if k in DEFAULT_RECIPE})
        budget = float(options["budget_seconds"] or settings.training_budget_seconds)
        for key in ("train_subset", "max_batches_per_epoch", "report_every_batches", "probe"):
            if options.get(key) is not None:
                recipe[key] = options[key]
        recipe["budget_seconds"] = budget
        architecture = str(section.get("architecture", "simple_cnn"))
        if architecture not in ARCHITECTURES:
            raise ValueError(f"stages.cifar10.architecture must be one of {sorted(ARCHITECTURES)}")
        recipe["architecture"] = ARCHITECTURES[architecture]
        recipe["progress_line_bytes"] = PROGRESS_LINE_BYTES
        recipe["progress_total_bytes"] = settings.sandbox_progress_bytes
        full, partial = float(options["full_accuracy"]), float(options["partial_accuracy"])
        if not 0.0 <= partial < full <= 1.0:
            raise ValueError("stages.cifar10 needs 0 <= partial_accuracy < full_accuracy <= 1")
        overrides = dict(section.get("limits", {}))
        limits = settings.sandbox_limits(**{
            "wall_seconds": settings.training_wall_seconds, "memory_bytes": settings.training_memory_bytes,
            "cpus": settings.training_cpus, "threads": max(1, int(settings.training_cpus)), **overrides})
        per_batch = budget / max(1, _total_steps(recipe))
        # A loop-style layer can take minutes for a single batch: the probe gives up on the first batch after
        # this long, so such a submission is stopped (with its explanation) within about two minutes.
        recipe["probe"] = {"first_batch_seconds": min(60.0, max(10.0, 20 * per_batch)), **recipe["probe"]}
        return cls(recipe=recipe, architecture=architecture, max_score=float(options["max_score"]),
                   full_accuracy=full, partial_accuracy=partial,
                   budget_seconds=budget, test_subset=options["test_subset"], limits=limits)


def _total_steps(recipe: Mapping) -> int:
    count = int(recipe.get("train_subset") or 50000)
    per_epoch = -(-count // int(recipe["batch_size"]))
    if recipe.get("max_batches_per_epoch"):
        per_epoch = min(per_epoch, int(recipe["max_batches_per_epoch"]))
    return per_epoch * int(recipe["epochs"])


def max_score(spec: Spec) -> float:
    return float(spec.stages.get(STAGE, {}).get("max_score", DEFAULT_OPTIONS["max_score"]))


def score_for(accuracy: float, config: StageConfig) -> float:
    """Full points at full_accuracy and above, linear from zero at partial_accuracy, zero below."""
    if accuracy >= config.full_accuracy:
        return config.max_score
    if accuracy < config.partial_accuracy:
        return 0.0
    fraction = (accuracy - config.partial_accuracy) / (config.full_accuracy - config.partial_accuracy)
    return round(config.max_score * fraction, 4)


# ----------------------------------------------------------------------------------------------------------
# The job


def build_job(source: bytes, config: StageConfig, prepared: PreparedCifar10) -> SandboxJob:
    """The sandbox job: recipe + initial parameters as inputs, the sandbox half of the cache as data."""
    recipe = config.recipe
    init = simple_cnn.init_params(int(recipe["seed"]))
    buffer = io.BytesIO()
    np.savez(buffer, **init)
    inputs = {"recipe.json": json.dumps(recipe, sort_keys=True).encode(), "init.npz": buffer.getvalue()}
    return SandboxJob(harness=HARNESS, submission=source, inputs=inputs,
                      data_dirs={"cifar10": prepared.sandbox_dir}, limits=config.limits)


# ----------------------------------------------------------------------------------------------------------
# Progress lines: untrusted (student code shares the process with the harness), validated field by field


_NUMBER = (int, float)
_EVENT_FIELDS: dict[str, dict[str, tuple]] = {
    "start": {"epochs": (int,), "batches": (int,), "batch_size": (int,), "train_images": (int,),
              "budget_s": _NUMBER, "numpy": (str,), "blas": (str,), "threads": (dict,), "cpu": (str,),
              "python": (str,)},
    "batch": {"epoch": (int,), "batch": (int,), "batches": (int,), "loss": _NUMBER, "train_accuracy": _NUMBER,
              "elapsed_s": _NUMBER, "projected_s": _NUMBER},
    "probe": {"batch_ms": _NUMBER, "batch_wall_ms": _NUMBER, "projected_s": _NUMBER, "budget_s": _NUMBER},
    "epoch": {"epoch": (int,), "loss": _NUMBER, "train_accuracy": _NUMBER, "lr": _NUMBER, "epoch_s": _NUMBER,
              "elapsed_s": _NUMBER, "projected_s": _NUMBER},
    "stopped": {"reason": (str,), "detail": (str,), "lower_bound": (bool,), "projected_s": _NUMBER, "budget_s": _NUMBER,
                "elapsed_s": _NUMBER, "epoch": (int,)},
    "layers": {"batch_size": (int,), "layers": (list,)},
    "error": {"kind": (str,), "message": (str,), "where": (list,), "epoch": (int,), "batch": (int,)},
    "done": {"epochs": (int,), "train_s": _NUMBER, "steps": (int,)},
}
_LAYER_FIELDS = {"name": (str,), "kind": (str,), "student": (bool,), "input_shape": (list,), "samples": (int,),
                 "status": (str,), "timed_out": (str,), "forward_ms": _NUMBER, "backward_ms": _NUMBER,
                 "limit_ms": _NUMBER,
                 "error": (str,)}
_TEXT_CHARS = 500
_NUMBER_LIMIT = 1e12


def _clean_value(value: Any, kinds: tuple) -> Any:
    if isinstance(value, bool) and bool not in kinds:
        raise ValueError("bool")
    if not isinstance(value, kinds):
        raise ValueError("type")
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) > _NUMBER_LIMIT):
        raise ValueError("number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _NUMBER_LIMIT:
        raise ValueError("number")
    if isinstance(value, str):
        return value[:_TEXT_CHARS]
    return value


def _clean_fields(data: Mapping, schema: Mapping[str, tuple]) -> dict:
    clean = {}
    for key, kinds in schema.items():
        if key in data and data[key] is not None:
            clean[key] = _clean_value(data[key], kinds)
    return clean


def parse_progress_line(line: str) -> dict | None:
    """A validated event dict, or None when the line is not a well-formed event (it is then ignored)."""
    if len(line.encode("utf-8", "replace")) > PROGRESS_LINE_BYTES:
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("event") not in _EVENT_FIELDS:
        return None
    event = data["event"]
    try:
        clean = _clean_fields(data, _EVENT_FIELDS[event])
        if event == "threads" or "threads" in clean:
            clean["threads"] = {str(k)[:40]: str(v)[:40] for k, v in list(clean["threads"].items())[:8]}
        if "where" in clean:
            clean["where"] = [str(item)[:200] for item in clean["where"][:8]]
        if "layers" in clean:
            layers = []
            for item in clean["layers"][:32]:
                if not isinstance(item, dict):
                    raise ValueError("layer")
                layer = _clean_fields(item, _LAYER_FIELDS)
                shape = layer.get("input_shape", [])
                if len(shape) > 6 or not all(isinstance(n, int) and 0 <= n < 10**7 for n in shape):
                    raise ValueError("shape")
                layers.append(layer)
            clean["layers"] = layers
    except ValueError:
        return None
    clean["event"] = event
    return clean


@dataclass
class ProgressLog:
    """Events of one run, in order, plus a count of rejected lines."""

    events: list[dict] = field(default_factory=list)
    rejected: int = 0

    def last(self, event: str) -> dict | None:
        return next((e for e in reversed(self.events) if e["event"] == event), None)

    def curve(self) -> list[dict]:
        by_epoch: dict[int, dict] = {}
        for event in self.events:
            if event["event"] == "epoch" and "epoch" in event and 0 < event["epoch"] <= MAX_CURVE_EPOCHS:
                by_epoch[event["epoch"]] = {k: v for k, v in event.items() if k != "event"}
        return [by_epoch[k] for k in sorted(by_epoch)]


# ----------------------------------------------------------------------------------------------------------
# Weights: untrusted bytes -> validated float32 parameters


def load_weights(blob: bytes) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """Parse result.bin as an .npz of the SimpleCNN parameters; (params, []) or (None, problems)."""
    if not blob:
        return None, ["no trained parameters were handed back"]
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return None, ["the handed-back parameters are not an .npz archive"]
    if len(members) > WEIGHTS_MAX_MEMBERS:
        return None, [f"the parameter archive has {len(members)} members, expected {len(simple_cnn.PARAM_SHAPES)}"]
    for member in members:
        if member.file_size > WEIGHTS_MAX_MEMBER_BYTES:
            return None, [f"parameter {member.filename!r} is too large ({member.file_size} bytes)"]
    params: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as loaded:
            for name in loaded.files:
                params[name] = loaded[name]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        return None, [f"the parameter archive could not be read safely: {error}"[:300]]
    problems = simple_cnn.validate_params(params)
    if problems:
        return None, problems
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}, []


@lru_cache(maxsize=2)
def _normalized_test_set(root: str, mean: tuple, std: tuple, subset: int | None) -> tuple[np.ndarray, np.ndarray]:
    prepared = open_prepared(Path(root))
    images = np.asarray(prepared.test_images())
    labels = prepared.test_labels().astype(np.int64)
    if subset:
        # Evenly spaced, so every class is represented (the cache is ordered by class).
        pick = np.linspace(0, len(labels) - 1, num=min(int(subset), len(labels))).astype(np.int64)
        images, labels = images[pick], labels[pick]
    mean_array, std_array = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    scale = (1.0 / (255.0 * std_array)).astype(np.float32).reshape(1, -1, 1, 1)
    shift = (mean_array / std_array).astype(np.float32).reshape(1, -1, 1, 1)
    return images.astype(np.float32) * scale - shift, labels


def test_accuracy(params: Mapping[str, np.ndarray], prepared: PreparedCifar10, recipe: Mapping,
                  subset: int | None = None) -> float:
    """Accuracy of the parameters on the test set, with the reference forward pass, outside any sandbox."""
    x, y = _normalized_test_set(str(prepared.root), tuple(recipe["normalize"]["mean"]),
                                tuple(recipe["normalize"]["std"]), subset)
    logits = simple_cnn.predict(params, x)
    return float((logits.argmax(axis=1) == y).mean())


# ----------------------------------------------------------------------------------------------------------
# The stage


def run_stage(context: StageContext) -> StageOutput:
    """Train in the sandbox, then grade the handed-back weights by test accuracy computed here.

    The pipeline runs this stage only when the layers it trains with passed their correctness checks.
    """
    started = time.monotonic()
    settings = context.settings
    try:
        config = StageConfig.from_spec(context.spec.stages.get(STAGE, {}), settings)
    except (ValueError, TypeError) as error:
        return _skipped(started, DEFAULT_OPTIONS["max_score"], "error", f"the CIFAR-10 stage is misconfigured: {error}")
    prepared = ensure_dataset(settings)

    log = ProgressLog()
    job = build_job(context.source, config, prepared)
    total_epochs = int(config.recipe["epochs"])
    totals = {"steps": 0}

    def on_progress(line: str) -> None:
        event = parse_progress_line(line)
        if event is None:
            log.rejected += 1
            return
        if len(log.events) < 20000:
            log.events.append(event)
        if event["event"] == "start" and event.get("batches"):
            totals["steps"] = int(event["batches"]) * total_epochs
        if event["event"] == "batch" and totals["steps"]:
            done = (event.get("epoch", 1) - 1) * event.get("batches", 0) + event.get("batch", 0)
            eta = event.get("projected_s", 0) - event.get("elapsed_s", 0) if event.get("projected_s") else None
            context.emit({"type": "progress", "stage": STAGE, "done": done, "total": totals["steps"],
                          "running": f"epoch {event.get('epoch')}/{total_epochs} loss {event.get('loss', 0):.3f} "
                                     f"train acc {event.get('train_accuracy', 0):.1%}"
                                     + (f", about {eta / 60:.0f} min left" if eta is not None else ""),
                          **{k: v for k, v in event.items() if k != "event"}})
        elif event["event"] in ("epoch", "probe", "stopped", "done"):
            context.emit({"type": "progress", "stage": STAGE, "epochs": total_epochs,
                          **{k: v for k, v in event.items() if k != "layers"}})

    outcome = context.runner.run(job, on_progress=on_progress)
    return judge_outcome(outcome, log, config, prepared, context.source, started)


def ensure_dataset(settings: Settings) -> PreparedCifar10:
    """The prepared cache; prepared once from settings.cifar10_source when missing (about half a minute)."""
    try:
        return open_prepared(settings.cifar10_cache_dir)
    except DatasetError:
        pass
    try:
        prepared, _ = prepare(settings.cifar10_source, settings.cifar10_cache_dir)
    except (DatasetError, OSError) as error:
        # Not the student's fault: the operator must provide the data set (`grader dataset prepare --source`).
        raise InfrastructureError(f"no CIFAR-10 data set: {error}") from error
    return prepared


def judge_outcome(outcome: SandboxOutcome, log: ProgressLog, config: StageConfig, prepared: PreparedCifar10,
                  source: bytes, started: float) -> StageOutput:
    """Turn the sandbox outcome and the progress events into the stage's result."""
    from grader import speed_probe

    curve = log.curve()
    stopped, error, done = log.last("stopped"), log.last("error"), log.last("done")
    start = log.last("start") or {}
    record: dict[str, Any] = {
        "test_accuracy": None, "epochs": len(curve), "epochs_planned": int(config.recipe["epochs"]),
        "train_seconds": (done or {}).get("train_s", curve[-1]["elapsed_s"] if curve else None),
        "projected_seconds": (log.last("probe") or {}).get("projected_s"),
        "step_ms": (log.last("probe") or {}).get("batch_ms"),
        "budget_seconds": config.budget_seconds, "curve": curve,
    }
    details: dict[str, Any] = {"sandbox_status": outcome.status, "backend": outcome.backend,
                               "sandbox_seconds": round(outcome.duration_s, 2), "rejected_progress_lines": log.rejected}
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

    params, problems = (None, []) if status == "timeout" else load_weights(outcome.result)
    score = 0.0
    if params is not None:
        accuracy = test_accuracy(params, prepared, config.recipe, config.test_subset)
        record["test_accuracy"] = round(accuracy, 4)
        score = score_for(accuracy, config)
        verdict = ("above" if accuracy >= config.full_accuracy else "below")
        messages.insert(0, f"Test accuracy {accuracy:.2%} after {len(curve)} epoch(s), {verdict} the "
                           f"{config.full_accuracy:.0%} target (computed by the grader from your trained weights).")
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

    details["reproducibility"] = reproducibility(outcome, start, config, prepared, source)
    if curve:
        details["curve_image"] = curve_image(curve, record["test_accuracy"], config.full_accuracy)
    details["cifar10"] = record
    message = " ".join(messages)
    test_status = "passed" if score >= config.max_score else ("timeout" if status == "timeout" else "failed")
    if status == "error":
        test_status = "error"
    stage = StageResult(name=STAGE, score=score, max_score=config.max_score, status=status,
                        duration_s=round(time.monotonic() - started, 3), message=message, details=details)
    test = TestResult(name=TEST_NAME, stage=STAGE, score=score, max_score=config.max_score, status=test_status,
                      output=message)
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


def _skipped(started: float, max_points: float, status: str, message: str) -> StageOutput:
    stage = StageResult(name=STAGE, score=0.0, max_score=float(max_points), status=status,  # type: ignore[arg-type]
                        duration_s=round(time.monotonic() - started, 3), message=message)
    test = TestResult(name=TEST_NAME, stage=STAGE, score=0.0, max_score=float(max_points),
                      status="error" if status == "error" else "failed", output=message)
    return StageOutput(result=stage, tests=[test], extra={"cifar10": {"test_accuracy": None, "skipped": message}})


# ----------------------------------------------------------------------------------------------------------
# Curve picture and reproducibility record


def curve_image(curve: list[dict], test_accuracy: float | None, target: float) -> dict:
    """Loss and train accuracy per epoch (and the final test accuracy) as an SVG, base64-encoded."""
    import base64

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.figure import Figure

    plt.rcParams["svg.hashsalt"] = "cifar10-curve"  # stable element ids: same run, same bytes
    epochs = [entry["epoch"] for entry in curve]
    figure = Figure(figsize=(7.0, 3.0))
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(epochs, [entry.get("loss") for entry in curve], marker="o", color="#1f77b4")
    loss_axes.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy (smoothed labels)")
    accuracy_axes.plot(epochs, [entry.get("train_accuracy") for entry in curve], marker="o", color="#2ca02c",
                       label="train (augmented)")
    accuracy_axes.axhline(target, color="#999999", linestyle="--", linewidth=1, label=f"target {target:.0%}")
    if test_accuracy is not None:
        accuracy_axes.plot([epochs[-1]], [test_accuracy], marker="*", markersize=12, color="#d62728",
                           linestyle="none", label=f"test {test_accuracy:.1%}")
    accuracy_axes.set(title="Accuracy", xlabel="epoch", ylim=(0, 1))
    accuracy_axes.legend(loc="lower right", fontsize=8)
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    return {"format": "svg", "encoding": "base64", "data": base64.b64encode(buffer.getvalue()).decode("ascii")}


def _host_cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def reproducibility(outcome: SandboxOutcome, start: Mapping, config: StageConfig, prepared: PreparedCifar10,
                    source: bytes) -> dict:
    """What it takes to replay this run: image, library builds, threads, seeds, CPU, data, and a command."""
    recipe_json = json.dumps(config.recipe, sort_keys=True).encode()
    return {
        "image_digest": outcome.image_digest,
        "backend": outcome.backend,
        "sandbox_numpy": start.get("numpy"),
        "sandbox_blas": start.get("blas"),
        "sandbox_python": start.get("python"),
        "threads": start.get("threads", {}),
        "cpu_quota": config.limits.cpus,
        "cpu_model": start.get("cpu") or _host_cpu_model(),
        "seed": int(config.recipe["seed"]),
        "recipe_sha256": hashlib.sha256(recipe_json).hexdigest(),
        "dataset_sha256": prepared.manifest.get("source", {}).get("sha256"),
        "submission_sha256": hashlib.sha256(source).hexdigest(),
        "grader_numpy": np.__version__,
        "replay": ((f"SANDBOX_IMAGE={outcome.image_digest} " if outcome.image_digest else "")
                   + f"grader grade spatial.py --stages cifar10 --sandbox {outcome.backend} --json"),
    }
