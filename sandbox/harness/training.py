"""Training harness: runs INSIDE the sandbox, next to the student's code. Imports only stdlib, NumPy, tinytorch.

It trains the assignment's network, built from the student's Conv2D / MaxPool2D / Flatten and the course kit's
Linear / ReLU / loss / optimizer, on the mounted CIFAR-10 training set, and hands back the trained parameters.
It never sees test labels and computes no test accuracy: the grader outside does that with its own forward pass.

Inputs (/job/inputs, written by the trusted side):
    recipe.json    seeds, epochs, batch size, optimizer, schedule, augmentation, normalization, architecture,
                   budget, subset sizes (for tests), progress caps
    init.npz       the initial parameters (names/shapes of the architecture), drawn outside from the same seed
Data (/job/data/cifar10, read-only): train_images.npy uint8 (N, 3, 32, 32), train_labels.npy uint8 (N,).
Outputs:
    /job/out/progress.jsonl   one JSON object per line, each at most `progress_line_bytes`:
        {"event": "start", ...}, {"event": "batch", "epoch", "batch", "batches", "loss", "train_accuracy",
        "elapsed_s", "projected_s"}, {"event": "epoch", ...}, {"event": "probe", ...}, {"event": "stopped", ...},
        {"event": "error", ...}, {"event": "done", ...}
    /job/out/result.bin       an .npz of float32 parameters (names of the architecture), rewritten after every
                              epoch so that a run killed at the wall-clock limit still hands back its last epoch.

The speed probe times the first batches after a warm-up, projects the whole run and stops early when the
projection exceeds the budget; it then times each layer alone (forward and backward) on the same batch, with a
SIGALRM deadline per measurement and a smaller batch when a layer is very slow, and reports those milliseconds.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the harness folder off sys.path

from harness_common import MEMORY_ERROR_EXIT_CODE, CappedWriter, parse_harness_args  # noqa: E402
from student_module import execute, new_module, parse  # noqa: E402

if __name__ == "__main__" and "--kit" in sys.argv[:-1]:
    # NumPy may live beside the kit (the unsafe test backend links it there): the kit path goes first.
    sys.path.insert(0, sys.argv[sys.argv.index("--kit") + 1])

import numpy as np  # noqa: E402

FORMAT = 1
ERROR_TEXT_CHARS = 2000  # longest exception text handed back
PRINT_CAP_BYTES = 64 * 1024  # how much of the student's printing reaches the log
WALL_BACKSTOP = 3.0  # a probe batch's wall-clock limit, as a multiple of its CPU-time limit

STUDENT_CLASSES = {"conv2d": ("Conv2D", "Conv2d"), "maxpool2d": ("MaxPool2D", "MaxPool2d"),
                   "avgpool2d": ("AvgPool2D", "AvgPool2d"), "flatten": ("Flatten",)}


class Deadline(BaseException):
    """Raised by SIGALRM (BaseException: `except Exception` in student code does not swallow it)."""


def _on_alarm(signum, frame):
    raise Deadline()


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_PROF, 0)
    signal.setitimer(signal.ITIMER_REAL, 0)


# ----------------------------------------------------------------------------------------------------------
# Recipe pieces: pure NumPy, shared with bench/cifar10_*.py so the benchmarks train exactly like the harness


def learning_rate(schedule: dict, step: int, total_steps: int) -> float:
    """Learning rate at optimizer step `step` (0-based) of `total_steps`.

    "one_cycle" follows torch.optim.lr_scheduler.OneCycleLR (cosine annealing): from peak/div_factor up to the
    peak over pct_start of the run, then down to peak/div_factor/final_div_factor. "constant" keeps `lr`.
    """
    kind = schedule.get("kind", "constant")
    if kind == "constant":
        return float(schedule["lr"])
    if kind != "one_cycle":
        raise ValueError(f"unknown schedule {kind!r}")
    peak = float(schedule["peak_lr"])
    initial = peak / float(schedule.get("div_factor", 25.0))
    final = initial / float(schedule.get("final_div_factor", 1e4))
    warm = max(1.0, float(schedule.get("pct_start", 0.3)) * total_steps - 1)
    if step <= warm:
        start, end, fraction = initial, peak, step / warm
    else:
        start, end, fraction = peak, final, min(1.0, (step - warm) / max(1.0, total_steps - 1 - warm))
    return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2


def augment(images: np.ndarray, rng: np.random.Generator, *, crop_padding: int, flip: bool) -> np.ndarray:
    """Random crop with zero padding and random horizontal flip of a uint8 (B, C, H, W) batch."""
    batch, channels, height, width = images.shape
    out = images
    if crop_padding:
        pad = crop_padding
        padded = np.zeros((batch, channels, height + 2 * pad, width + 2 * pad), dtype=images.dtype)
        padded[:, :, pad:pad + height, pad:pad + width] = images
        offsets = rng.integers(0, 2 * pad + 1, size=(batch, 2))
        out = np.empty_like(images)
        for i, (dy, dx) in enumerate(offsets):
            out[i] = padded[i, :, dy:dy + height, dx:dx + width]
    if flip:
        mask = rng.random(batch) < 0.5
        if out is images:
            out = images.copy()
        out[mask] = out[mask, :, :, ::-1]
    return out


def normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """uint8 (B, C, H, W) -> float32 ((x / 255) - mean) / std per channel."""
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(1, -1, 1, 1)
    shift = (mean / std).astype(np.float32).reshape(1, -1, 1, 1)
    return images.astype(np.float32) * scale - shift


def epoch_batches(count: int, batch_size: int, rng: np.random.Generator, drop_last: bool = False):
    """Index arrays of one shuffled epoch."""
    order = rng.permutation(count)
    stop = count - count % batch_size if drop_last else count
    for start in range(0, stop, batch_size):
        yield np.sort(order[start:start + batch_size])  # sorted: mmap reads stay sequential; order is irrelevant


def batches_per_epoch(count: int, batch_size: int, drop_last: bool = False) -> int:
    return count // batch_size if drop_last else -(-count // batch_size)


# ----------------------------------------------------------------------------------------------------------
# Output



class Progress:
    """Appends size-capped JSON lines to progress.jsonl; stops writing before the stream's total cap."""

    def __init__(self, path: str, line_bytes: int, total_bytes: int):
        self.handle = open(path, "a", encoding="utf-8")
        self.line_bytes, self.left = line_bytes, total_bytes

    def say(self, line: dict, essential: bool = False) -> None:
        text = json.dumps(line, separators=(",", ":"), allow_nan=False)
        if len(text) >= self.line_bytes:
            text = json.dumps({"event": line.get("event", "?"), "truncated": True})
        reserve = 0 if essential else 16 * 1024  # keep room for the final events
        if len(text) + 1 > self.left - reserve:
            return
        self.left -= len(text) + 1
        try:
            self.handle.write(text + "\n")
            self.handle.flush()
        except (OSError, ValueError):
            pass


# ----------------------------------------------------------------------------------------------------------
# The kit and the student's module


def _kit_attr(candidates):
    """The first of ("module", "Name") pairs that imports, so the harness follows the kit's layout."""
    for module_name, attr in candidates:
        try:
            module = __import__(module_name, fromlist=[attr])
        except ImportError:
            continue
        value = getattr(module, attr, None)
        if value is not None:
            return value
    raise ImportError(f"the course kit provides none of {candidates}")


class Kit:
    def __init__(self):
        self.Tensor = _kit_attr([("tinytorch.core.tensor", "Tensor"), ("tinytorch", "Tensor")])
        self.Linear = _kit_attr([("tinytorch.core.layers", "Linear"), ("tinytorch.nn", "Linear"),
                                 ("tinytorch", "Linear")])
        self.ReLU = _kit_attr([("tinytorch.core.activations", "ReLU"), ("tinytorch.nn", "ReLU"),
                               ("tinytorch", "ReLU")])
        self.CrossEntropyLoss = _kit_attr([("tinytorch.core.losses", "CrossEntropyLoss"),
                                           ("tinytorch.nn", "CrossEntropyLoss"), ("tinytorch", "CrossEntropyLoss")])
        self.SGD = _kit_attr([("tinytorch.core.optimizers", "SGD"), ("tinytorch.optim", "SGD"), ("tinytorch", "SGD")])
        self.Adam = _kit_attr([("tinytorch.core.optimizers", "Adam"), ("tinytorch.optim", "Adam"),
                               ("tinytorch", "Adam")])


def import_submission(path: str, time_limit: float):
    """Import spatial.py under a time limit; returns (module, None) or (None, error record)."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
        tree = parse(text, os.path.realpath(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError) as error:
        return None, {"kind": "import", "message": f"{type(error).__name__}: {error}"[:ERROR_TEXT_CHARS]}
    module = new_module(os.path.realpath(path))  # as tinytorch.core.spatial (and spatial), like the correctness job
    try:
        signal.setitimer(signal.ITIMER_REAL, time_limit)
        execute(module, tree, os.path.realpath(path), describe, lambda error: None)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException as error:
        signal.setitimer(signal.ITIMER_REAL, 0)
        return None, {"kind": "import", "message": describe(error)}
    return module, None


def describe(error: BaseException) -> str:
    if isinstance(error, Deadline):
        return "time limit reached"
    try:
        text = f"{type(error).__name__}: {error}"
    except BaseException:
        text = type(error).__name__
    return text[:ERROR_TEXT_CHARS]


def student_class(module, kind: str, kwargs: dict | None = None):
    """The first of the kind's class names that the file defines and whose constructor takes `kwargs`."""
    classes = [module.__dict__[name] for name in STUDENT_CLASSES[kind] if isinstance(module.__dict__.get(name), type)]
    for cls in classes:
        try:
            inspect.signature(cls).bind(**(kwargs or {}))
        except TypeError:
            continue
        except ValueError:
            pass
        return cls
    if classes:
        return classes[0]
    raise LookupError(f"spatial.py defines no {STUDENT_CLASSES[kind][0]} class")


def student_function(module, name: str):
    value = module.__dict__.get(name)
    if not callable(value):
        raise LookupError(f"spatial.py defines no function {name}")
    return value


class Reshape:
    """(N, ...) -> (N, features) with the kit's recorded reshape."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


def call(layer, x):
    forward = getattr(layer, "forward", None)
    return forward(x) if callable(forward) else layer(x)


class Network:
    """The architecture as an ordered list of (kind, name, layer), plus name -> parameter Tensor."""

    def __init__(self, kit: Kit, module, architecture: list, init: dict):
        self.kit, self.layers, self.params, self.kwargs = kit, [], {}, {}
        for kind, name, kwargs in architecture:
            if kind in STUDENT_CLASSES:
                layer = student_class(module, kind, kwargs)(**kwargs)
            elif kind == "flatten_function":  # the assignment grades a flatten(x) function, not a class
                layer = student_function(module, "flatten")
            elif kind == "reshape":  # flatten is not graded: the kit's reshape stands in
                layer = Reshape()
            elif kind == "linear":
                layer = kit.Linear(kwargs["in_features"], kwargs["out_features"])
            elif kind == "relu":
                layer = kit.ReLU()
            else:
                raise ValueError(f"unknown layer kind {kind!r} in the architecture")
            for attr in ("weight", "bias"):
                key = f"{name}.{attr}"
                if key in init:
                    tensor = kit.Tensor(np.array(init[key], dtype=np.float32, copy=True), requires_grad=True)
                    setattr(layer, attr, tensor)
                    self.params[key] = tensor
            self.layers.append((kind, name, layer))
            self.kwargs[name] = dict(kwargs)

    def forward(self, x):
        for _kind, _name, layer in self.layers:
            x = call(layer, x)
        return x

    def described_layers(self):
        return [(kind, name, layer, self.kwargs[name]) for kind, name, layer in self.layers]

    def parameters(self) -> list:
        return list(self.params.values())

    def numpy_params(self) -> dict:
        return {name: np.array(np.asarray(tensor.data), dtype=np.float32, copy=True)
                for name, tensor in self.params.items()}


def data_of(value):
    return np.asarray(getattr(value, "data", value))


# ----------------------------------------------------------------------------------------------------------
# The run


class Trainer:
    def __init__(self, args, recipe: dict, init: dict, progress: Progress):
        self.args, self.recipe, self.init, self.progress = args, recipe, init, progress
        self.started, self.cpu_started = time.perf_counter(), time.process_time()
        self.result_path = os.path.join(args.out, "result.bin")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def charged(self) -> float:
        """Time charged against the budget: wall time, or CPU time when that is less (a busy host's waiting)."""
        return min(self.elapsed(), time.process_time() - self.cpu_started)

    def load_data(self):
        data_dir = os.path.join(self.args.data, self.recipe.get("data_dir", "cifar10"))
        images = np.load(os.path.join(data_dir, "train_images.npy"), mmap_mode="r", allow_pickle=False)
        labels = np.load(os.path.join(data_dir, "train_labels.npy"), allow_pickle=False).astype(np.int64)
        subset = self.recipe.get("train_subset")
        if subset:
            # A fixed, class-balanced-enough prefix of a seeded permutation: tests train on a few hundred images.
            pick = np.sort(np.random.default_rng(self.recipe["seed"]).permutation(len(labels))[: int(subset)])
            images, labels = np.asarray(images[pick]), labels[pick]
        else:
            images = np.asarray(images)  # 150 MB, read once: faster batches than page faults on the mapping
        return images, labels

    def write_params(self, network: Network) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **network.numpy_params())
        with open(self.result_path, "wb") as handle:
            handle.write(buffer.getvalue())

    def make_optimizer(self, kit: Kit, network: Network):
        spec = self.recipe["optimizer"]
        params = network.parameters()
        if spec["kind"] == "sgd":
            return kit.SGD(params, lr=self.initial_lr(), momentum=spec.get("momentum", 0.9),
                           nesterov=spec.get("nesterov", True), weight_decay=spec.get("weight_decay", 0.0))
        if spec["kind"] == "adam":
            return kit.Adam(params, lr=self.initial_lr(), weight_decay=spec.get("weight_decay", 0.0))
        raise ValueError(f"unknown optimizer {spec['kind']!r}")

    def initial_lr(self) -> float:
        return learning_rate(self.recipe["schedule"], 0, 1)

    def run(self, kit: Kit, module) -> int:
        recipe = self.recipe
        np.random.seed(recipe["seed"] % 2**32)  # for student code that draws from the global generator
        rng = np.random.default_rng(recipe["seed"])
        images, labels = self.load_data()
        mean = np.asarray(recipe["normalize"]["mean"], dtype=np.float64)
        std = np.asarray(recipe["normalize"]["std"], dtype=np.float64)
        batch_size, epochs = int(recipe["batch_size"]), int(recipe["epochs"])
        per_epoch = batches_per_epoch(len(labels), batch_size)
        max_batches = recipe.get("max_batches_per_epoch")
        if max_batches:
            per_epoch = min(per_epoch, int(max_batches))
        total_steps = per_epoch * epochs
        aug = recipe.get("augmentation", {})
        budget = float(recipe["budget_seconds"])
        probe = recipe.get("probe", {})
        warmup, probe_batches = int(probe.get("warmup_batches", 1)), int(probe.get("batches", 4))
        first_batch_limit = float(probe.get("first_batch_seconds", 60.0))
        report_every = int(recipe.get("report_every_batches", 20))

        signal.setitimer(signal.ITIMER_REAL, float(recipe.get("build_seconds", 30.0)))
        try:
            network = Network(kit, module, recipe["architecture"], self.init)
            loss_fn = kit.CrossEntropyLoss(label_smoothing=float(recipe.get("label_smoothing", 0.0)))
            optimizer = self.make_optimizer(kit, network)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.progress.say({"event": "start", "epochs": epochs, "batches": per_epoch, "batch_size": batch_size,
                           "train_images": int(len(labels)), "budget_s": budget, **environment()}, essential=True)

        step, timed, timed_seconds, timed_wall, projected = 0, 0, 0.0, 0.0, None
        curve = []
        for epoch in range(1, epochs + 1):
            epoch_start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
            for index, batch in enumerate(epoch_batches(len(labels), batch_size, rng)):
                if index >= per_epoch:
                    break
                x_uint8 = augment(images[batch], rng, crop_padding=int(aug.get("crop_padding", 0)),
                                  flip=bool(aug.get("horizontal_flip", False)))
                x = normalize(x_uint8, mean, std)
                y = labels[batch]
                optimizer.lr = learning_rate(recipe["schedule"], step, total_steps)
                batch_start, batch_cpu = time.perf_counter(), time.process_time()
                in_probe = step < warmup + probe_batches
                if in_probe:
                    # One batch of a loop-style layer can take minutes: bound it, then judge the projection. The
                    # bound is on CPU time (a busy host must not stop a fast submission), with a wall-clock backstop.
                    limit = first_batch_limit if step < warmup else max(budget / total_steps * 20, 5.0)
                    signal.setitimer(signal.ITIMER_PROF, limit)
                    signal.setitimer(signal.ITIMER_REAL, limit * WALL_BACKSTOP)
                try:
                    logits = network.forward(kit.Tensor(x))
                    loss = loss_fn(logits, kit.Tensor(y))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                except Deadline:
                    _disarm()
                    return self.stop_slow(kit, module, x, y, network, loss_fn, total_steps, limit * total_steps,
                                          f"one training batch took more than {limit:.0f} s", lower_bound=True)
                finally:
                    if in_probe:
                        _disarm()
                seconds = time.perf_counter() - batch_start
                # The projection uses the smaller of wall and CPU time: on a busy host the wall clock counts
                # time spent waiting for a core, which says nothing about the submission's speed.
                charged = min(seconds, time.process_time() - batch_cpu)
                step += 1
                loss_value = float(data_of(loss).reshape(-1)[0])
                if not math.isfinite(loss_value):
                    self.progress.say({"event": "error", "kind": "diverged", "epoch": epoch, "batch": index + 1,
                                       "message": "the training loss became NaN or infinite"}, essential=True)
                    self.write_params(network)
                    return 0
                predictions = data_of(logits).argmax(axis=1)
                correct += int((predictions == y).sum())
                seen += len(y)
                loss_sum += loss_value * len(y)
                if warmup <= step - 1 < warmup + probe_batches:
                    timed += 1
                    timed_seconds += charged
                    timed_wall += seconds
                    if timed == probe_batches:
                        per_batch = timed_seconds / timed
                        projected = self.elapsed() + per_batch * (total_steps - step)
                        self.progress.say({"event": "probe", "batch_ms": round(per_batch * 1000, 2),
                                           "batch_wall_ms": round(timed_wall / timed * 1000, 2),
                                           "projected_s": round(projected, 1), "budget_s": budget}, essential=True)
                        if projected > budget:
                            return self.stop_slow(kit, module, x, y, network, loss_fn, total_steps, projected,
                                                  "projected training time over the budget")
                if (index + 1) % report_every == 0 or index + 1 == per_epoch:
                    done = step / total_steps
                    self.progress.say({
                        "event": "batch", "epoch": epoch, "batch": index + 1, "batches": per_epoch,
                        "loss": round(loss_sum / seen, 5), "train_accuracy": round(correct / seen, 5),
                        "elapsed_s": round(self.elapsed(), 2),
                        "projected_s": round(self.elapsed() / done, 1) if done else None})
            entry = {"event": "epoch", "epoch": epoch, "loss": round(loss_sum / max(seen, 1), 5),
                     "train_accuracy": round(correct / max(seen, 1), 5),
                     "lr": round(learning_rate(recipe["schedule"], max(step - 1, 0), total_steps), 6),
                     "epoch_s": round(time.perf_counter() - epoch_start, 2), "elapsed_s": round(self.elapsed(), 2),
                     "projected_s": round(self.elapsed() / (step / total_steps), 1)}
            curve.append(entry)
            self.write_params(network)
            self.progress.say(entry, essential=True)
            if self.charged() > budget and epoch < epochs:
                self.progress.say({"event": "stopped", "reason": "budget", "epoch": epoch,
                                   "elapsed_s": round(self.elapsed(), 1), "budget_s": budget}, essential=True)
                return 0
        self.progress.say({"event": "done", "epochs": epochs, "train_s": round(self.elapsed(), 2),
                           "steps": step}, essential=True)
        return 0

    def stop_slow(self, kit, module, x, y, network, loss_fn, total_steps, projected, reason,
                  lower_bound: bool = False) -> int:
        """Over budget: measure each layer alone on this batch and report where the time goes."""
        budget = float(self.recipe["budget_seconds"])
        self.progress.say({"event": "stopped", "reason": "speed", "detail": reason, "lower_bound": lower_bound,
                           "projected_s": round(projected, 1), "budget_s": budget,
                           "elapsed_s": round(self.elapsed(), 1)}, essential=True)
        layers = profile_layers(kit, network, x, float(self.recipe.get("probe", {}).get("layer_seconds", 10.0)),
                                float(self.recipe.get("probe", {}).get("profile_seconds", 60.0)))
        self.progress.say({"event": "layers", "batch_size": int(x.shape[0]), "layers": layers}, essential=True)
        return 0


def output_shape(kind: str, kwargs: dict, shape: tuple) -> tuple:
    """Shape of a layer's output, from the architecture alone (to go on profiling after a layer timed out)."""
    if kind == "conv2d":
        k, stride, pad = kwargs.get("kernel_size", 3), kwargs.get("stride", 1), kwargs.get("padding", 0)
        return (shape[0], kwargs["out_channels"], (shape[2] + 2 * pad - k) // stride + 1,
                (shape[3] + 2 * pad - k) // stride + 1)
    if kind in ("maxpool2d", "avgpool2d"):
        k = kwargs.get("kernel_size", 2)
        stride = kwargs.get("stride") or k
        return (shape[0], shape[1], (shape[2] - k) // stride + 1, (shape[3] - k) // stride + 1)
    if kind in ("flatten", "flatten_function", "reshape"):
        return (shape[0], int(np.prod(shape[1:])))
    if kind == "linear":
        return (shape[0], kwargs["out_features"])
    return tuple(shape)


def profile_layers(kit: Kit, network: Network, x: np.ndarray, layer_seconds: float, total_seconds: float) -> list:
    """Forward and backward milliseconds of every layer alone, on that layer's input for batch x.

    Each layer is first timed on one image; when the whole batch would clearly fit in `layer_seconds` it is timed
    on the whole batch, otherwise the one-image time is scaled to the batch (`samples` says which). Forward and
    backward each get their own SIGALRM deadline; a phase that runs out is reported as a lower bound and the next
    layer is timed on random input of the right shape. The whole profile is bounded by `total_seconds`.
    """
    full = x.shape[0]
    started = time.perf_counter()
    records = []
    activation = x
    for kind, name, layer, kwargs in network.described_layers():
        record = {"name": name, "kind": kind, "student": kind in STUDENT_CLASSES, "input_shape": list(activation.shape)}
        records.append(record)
        left = total_seconds - (time.perf_counter() - started)
        if left <= 1:
            record["status"] = "skipped"
            break
        # One image first: a loop-style layer takes seconds per image, and the estimate is what matters then.
        samples = 1
        limit = min(layer_seconds, left / 2)
        outcome = _time_layer(kit, layer, np.ascontiguousarray(activation[:1]), limit)
        if outcome["status"] == "ok" and full > 1:
            estimate = (outcome["forward_ms"] + outcome["backward_ms"]) / 1000 * full
            left = total_seconds - (time.perf_counter() - started)
            if estimate < min(layer_seconds, left / 2) / 2:
                samples = full
                outcome = _time_layer(kit, layer, np.ascontiguousarray(activation), min(layer_seconds, left / 2))
        scale = full / samples
        record.update(samples=samples, status=outcome["status"])
        if "timed_out" in outcome:
            record["timed_out"] = outcome["timed_out"]
        for key in ("forward_ms", "backward_ms"):
            if key in outcome:
                record[key] = round(outcome[key] * scale, 3)
        if "error" in outcome:
            record["error"] = outcome["error"][:300]
        if outcome["status"] == "timeout":
            record["limit_ms"] = round(limit * 1000 * scale, 1)
        out = outcome.get("out")
        if out is None or out.shape[0] != samples:
            shape = output_shape(kind, kwargs, tuple(activation.shape))
            activation = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            continue
        activation = out
        if samples != full:
            # Later layers need the full batch's activations: repeat the sample's output (timing is value-blind).
            activation = np.concatenate([activation] * full)
    return records


def _time_layer(kit: Kit, layer, x: np.ndarray, limit: float) -> dict:
    """Times forward, then backward, each under its own deadline of `limit` seconds."""
    result: dict = {"status": "ok"}
    try:
        signal.setitimer(signal.ITIMER_REAL, max(limit, 0.01))
        tensor = kit.Tensor(x.astype(np.float32), requires_grad=True)
        start = time.perf_counter()
        out = call(layer, tensor)
        result["forward_ms"] = (time.perf_counter() - start) * 1000
        signal.setitimer(signal.ITIMER_REAL, 0)
        out_data = np.array(data_of(out), dtype=np.float32)
        result["out"] = out_data
        signal.setitimer(signal.ITIMER_REAL, max(limit, 0.01))
        start = time.perf_counter()
        out.backward(np.ones_like(out_data) / out_data.size)
        result["backward_ms"] = (time.perf_counter() - start) * 1000
        signal.setitimer(signal.ITIMER_REAL, 0)
    except Deadline:
        result["status"] = "timeout"
        result["timed_out"] = "backward" if "forward_ms" in result else "forward"
    except BaseException as error:
        signal.setitimer(signal.ITIMER_REAL, 0)
        result.update(status="error", error=describe(error))
    return result


def environment() -> dict:
    """NumPy/BLAS build, thread settings, CPU model and Python version, for the reproducibility record."""
    blas = ""
    try:
        config = getattr(np.__config__, "CONFIG", None)  # NumPy >= 1.26
        if isinstance(config, dict):
            info = config.get("Build Dependencies", {}).get("blas", {})
            blas = f"{info.get('name', '')} {info.get('version', '')} {info.get('openblas configuration', '')}"
        else:
            info = getattr(np.__config__, "blas_opt_info", None) or getattr(np.__config__, "openblas_info", {})
            blas = ",".join(info.get("libraries", [])) if isinstance(info, dict) else ""
    except Exception:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    threads = {name: os.environ.get(name, "") for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                         "MKL_NUM_THREADS")}
    threads["cpus_visible"] = str(len(os.sched_getaffinity(0))) if hasattr(os, "sched_getaffinity") else ""
    return {"numpy": np.__version__, "blas": blas.strip()[:200], "threads": threads, "cpu": cpu[:200],
            "python": sys.version.split()[0]}


def main() -> int:
    args = parse_harness_args()
    sys.dont_write_bytecode = True
    with open(os.path.join(args.inputs, "recipe.json"), encoding="utf-8") as handle:
        recipe = json.load(handle)
    loaded = np.load(os.path.join(args.inputs, "init.npz"), allow_pickle=False)
    init = {key: loaded[key] for key in loaded.files}
    progress = Progress(os.path.join(args.out, "progress.jsonl"), int(recipe.get("progress_line_bytes", 4096)),
                        int(recipe.get("progress_total_bytes", 1024 * 1024)))
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGPROF, _on_alarm)
    kit = Kit()
    stderr_fd = os.dup(2)
    sys.stdout = CappedWriter(stderr_fd, PRINT_CAP_BYTES)
    sys.stderr = sys.stdout
    module, error = import_submission(args.submission, float(recipe.get("import_seconds", 10.0)))
    if module is None:
        progress.say({"event": "error", **error}, essential=True)
        return 0
    trainer = Trainer(args, recipe, init, progress)
    try:
        return trainer.run(kit, module)
    except MemoryError:
        progress.say({"event": "error", "kind": "memory", "message": "training ran out of memory"}, essential=True)
        os._exit(MEMORY_ERROR_EXIT_CODE)
    except BaseException as error:
        frames = [f"{os.path.basename(f.filename)}:{f.lineno} in {f.name}"
                  for f in traceback.extract_tb(error.__traceback__)][-6:]
        progress.say({"event": "error", "kind": "exception", "message": describe(error), "where": frames},
                     essential=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
