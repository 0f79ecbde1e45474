"""Progress lines of the training job: untrusted (student code shares the process with the harness), so each is
validated field by field; they are shown to the student and never used for the grade."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

PROGRESS_LINE_BYTES = 4096  # longest accepted progress line
MAX_CURVE_EPOCHS = 500

_NUMBER = (int, float)
_EVENT_FIELDS: dict[str, dict[str, tuple]] = {
    "start": {"epochs": (int,), "batches": (int,), "batch_size": (int,), "train_images": (int,),
              "budget_s": _NUMBER, "numpy": (str,), "blas": (str,), "threads": (dict,), "cpu": (str,),
              "python": (str,)},
    "batch": {"epoch": (int,), "batch": (int,), "batches": (int,), "loss": _NUMBER, "train_accuracy": _NUMBER,
              "elapsed_s": _NUMBER, "projected_s": _NUMBER},
    "probe": {"batch_ms": _NUMBER, "batch_wall_ms": _NUMBER, "step_units": _NUMBER, "yardstick_ms": _NUMBER,
              "load_factor": _NUMBER, "tainted": (bool,), "projected_s": _NUMBER, "budget_s": _NUMBER},
    "epoch": {"epoch": (int,), "loss": _NUMBER, "train_accuracy": _NUMBER, "lr": _NUMBER, "epoch_s": _NUMBER,
              "elapsed_s": _NUMBER, "projected_s": _NUMBER, "charged_s": _NUMBER, "load_factor": _NUMBER},
    "stopped": {"reason": (str,), "detail": (str,), "lower_bound": (bool,), "projected_s": _NUMBER, "budget_s": _NUMBER,
                "elapsed_s": _NUMBER, "epoch": (int,), "charged_s": _NUMBER, "load_factor": _NUMBER,
                "projected_wall_s": _NUMBER},
    "layers": {"batch_size": (int,), "layers": (list,)},
    "error": {"kind": (str,), "message": (str,), "where": (list,), "epoch": (int,), "batch": (int,)},
    "done": {"epochs": (int,), "train_s": _NUMBER, "charged_s": _NUMBER, "steps": (int,)},
    # Whether the harness splits each batch over the job's threads (sandbox/harness/data_parallel.py), and why not.
    "data_parallel": {"enabled": (bool,), "workers": (int,), "reason": (str,)},
    "import": {},  # the harness is about to import the student's file
}
_LAYER_FIELDS = {"name": (str,), "kind": (str,), "student": (bool,), "input_shape": (list,), "samples": (int,),
                 "status": (str,), "timed_out": (str,), "forward_ms": _NUMBER, "backward_ms": _NUMBER,
                 "limit_ms": _NUMBER, "calibration_ms": _NUMBER, "error": (str,)}
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
