"""What it takes to replay a training run: image, library builds, threads, seeds, CPU model, data, a command."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Mapping

import numpy as np

from grader.datasets.cifar10 import PreparedCifar10
from grader.training.recipe import StageConfig
from sandbox.runner import SandboxOutcome


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
