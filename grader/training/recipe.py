"""The training recipe: the spec's `[stages.cifar10]` section resolved against defaults and settings."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

from grader.settings import Settings
from grader.training.progress import PROGRESS_LINE_BYTES
from grader.checks import CLASS_NAMES
from reference.architectures import BUILT_IN, MODULE_TEXT, Architecture
from reference.network import INIT_SCHEMES
from sandbox.runner import SandboxLimits

# The recipe the harness follows when the spec says nothing (default.toml states the module's own choice, measured
# in bench/cifar10_seeds.py and bench/cifar10_reference.py; figures in bench/results/). `[stages.cifar10]` in the
# assignment spec overrides any key (nested tables merge).
REFERENCE_YARDSTICK_SECONDS = 0.025
DEFAULT_RECIPE: dict[str, Any] = {
    "seed": 0,
    "epochs": 8,
    "batch_size": 128,
    "init": "pytorch",  # or "kaiming" (reference/network.py init_params)
    "optimizer": {"kind": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
    "schedule": {"kind": "one_cycle", "peak_lr": 0.05, "pct_start": 0.3, "div_factor": 25.0,
                 "final_div_factor": 1e4},
    "label_smoothing": 0.1,
    # Each batch split over the job's threads, one share per core (sandbox/harness/data_parallel.py); the
    # harness checks it against one pass on the probe batches and falls back by itself. False: always one pass.
    "data_parallel": True,
    "augmentation": {"crop_padding": 0, "horizontal_flip": True},
    # Test-time flip: the grader averages class probabilities over each test image and its mirror image.
    "evaluation": {"horizontal_flip": True},
    # Per-channel statistics of the training images scaled to [0, 1] (shared/datasets/README.md, float64).
    "normalize": {"mean": [0.4913, 0.4821, 0.4465], "std": [0.2452, 0.2428, 0.2606]},
    # What the speed probe's yardstick (sandbox/harness/calibration.py: the matrix products of one vectorized
    # SimpleCNN step on 32 images, with their memory passes) takes inside the Docker sandbox on an idle reference
    # grading machine: 25.5 ms (the probe event of `python -m bench.cifar10_reference`, 2026-12-01, load 1.3; the
    # same products take 20.9 ms outside, `python -m bench.speed_calibration`). It turns the harness's
    # machine-relative measurements into the reference seconds budgets are written in.
    "calibration": {"reference_seconds": REFERENCE_YARDSTICK_SECONDS},
}
# Stage options that are not part of the harness recipe (defaults; the spec section overrides them).
DEFAULT_OPTIONS: dict[str, Any] = {
    "max_score": 40.0,
    "full_accuracy": 0.75,  # full points at or above this test accuracy
    "partial_accuracy": 0.60,  # linear partial credit from here up to full_accuracy; zero below
    "budget_seconds": None,  # reference seconds (an idle grading machine's); None: settings.training_budget_seconds
    "train_subset": None,  # tests only: train on this many images
    "max_batches_per_epoch": None,  # tests only
    "budget_steps": None,  # tests and benchmarks only: judge the probe as if the run had this many steps
    "test_subset": None,  # tests only: evaluate on N evenly spaced test images
    "report_every_batches": 20,
    # Seconds of wall time; the harness scales a batch's deadline to the machine's load, up to batch_cap_seconds.
    "probe": {"warmup_batches": 1, "batches": 5, "layer_seconds": 6.0, "profile_seconds": 35.0,
              "batch_cap_seconds": 30.0, "calibrate_every": 25},
}
# Names the stage section may give as `architecture` (the spec's top-level [architecture] is the usual place).
ARCHITECTURES = {"simple_cnn": MODULE_TEXT, **BUILT_IN}


def _merge(base: dict, override: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


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
    network: Architecture = MODULE_TEXT  # the layers trained and evaluated

    @classmethod
    def from_spec(cls, section: Mapping, settings: Settings, *, architecture: Architecture | None = None,
                  flatten: str = "class") -> "StageConfig":
        """The stage's settings; `architecture` and `flatten` come from the spec (what the correctness checks
        graded), unless the section names an architecture itself."""
        options = _merge(DEFAULT_OPTIONS, {k: v for k, v in section.items() if k in DEFAULT_OPTIONS})
        recipe = _merge(DEFAULT_RECIPE, {k: v for k, v in section.items() if k in DEFAULT_RECIPE})
        budget = float(options["budget_seconds"] or settings.training_budget_seconds)
        for key in ("train_subset", "max_batches_per_epoch", "budget_steps", "report_every_batches", "probe"):
            if options.get(key) is not None:
                recipe[key] = options[key]
        recipe["budget_seconds"] = budget
        if "architecture" in section or architecture is None:
            name = str(section.get("architecture", "simple_cnn"))
            if name not in ARCHITECTURES:
                raise ValueError(f"stages.cifar10.architecture must be one of {sorted(ARCHITECTURES)}")
            network = ARCHITECTURES[name]
        else:
            network = architecture
        recipe["architecture"] = network.as_recipe(flatten)
        recipe["class_names"] = {kind: list(CLASS_NAMES[kind]) for kind in ("conv2d", "maxpool2d", "avgpool2d",
                                                                             "flatten")}
        recipe["progress_line_bytes"] = PROGRESS_LINE_BYTES
        recipe["progress_total_bytes"] = settings.sandbox_progress_bytes
        if recipe["init"] not in INIT_SCHEMES:
            raise ValueError(f"stages.cifar10.init must be one of {list(INIT_SCHEMES)}")
        full, partial = float(options["full_accuracy"]), float(options["partial_accuracy"])
        if not 0.0 <= partial < full <= 1.0:
            raise ValueError("stages.cifar10 needs 0 <= partial_accuracy < full_accuracy <= 1")
        overrides = dict(section.get("limits", {}))
        limits = settings.sandbox_limits(**{
            "wall_seconds": settings.training_wall_seconds, "memory_bytes": settings.training_memory_bytes,
            "cpus": settings.training_cpus, "threads": max(1, int(settings.training_cpus)),
            "cpu_shares": settings.training_cpu_shares,
            "cpu_shares_host_wide": settings.training_cpu_shares_host_wide, **overrides})
        per_batch = budget / max(1, int(recipe.get("budget_steps") or _total_steps(recipe)))
        # A loop-style layer can take minutes for a single batch: the probe gives up on the first batch after
        # this long (scaled to the machine's load, capped at batch_cap_seconds of wall time), so such a
        # submission is stopped (with its explanation) within about two minutes.
        recipe["probe"] = {"first_batch_seconds": min(30.0, max(10.0, 20 * per_batch)), **recipe["probe"]}
        # The harness stops a run this host cannot finish in time as the host's fault (rescheduled), not a timeout.
        recipe["wall_seconds"] = float(limits.wall_seconds)
        return cls(recipe=recipe, architecture=network.name, network=network, max_score=float(options["max_score"]),
                   full_accuracy=full, partial_accuracy=partial,
                   budget_seconds=budget, test_subset=options["test_subset"], limits=limits)


def _total_steps(recipe: Mapping) -> int:
    count = int(recipe.get("train_subset") or 50000)
    per_epoch = -(-count // int(recipe["batch_size"]))
    if recipe.get("max_batches_per_epoch"):
        per_epoch = min(per_epoch, int(recipe["max_batches_per_epoch"]))
    return per_epoch * int(recipe["epochs"])
