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

Time is judged against the same machine at the same moment. A yardstick of known cost (the matrix products a
vectorized step performs, calibration.py) is measured between the probe's steps and every few dozen steps after;
a step's cost is its time in multiples of the yardstick, and every budget and projection is in reference seconds
(the time on an idle reference grading machine, where the yardstick takes `calibration.reference_seconds`). The
probe times the first batches after a warm-up, projects the whole run and stops early when the projection exceeds
the budget; it then times each layer alone (forward and backward) on the full batch, with a SIGALRM deadline per
measurement, and reports those milliseconds with the yardstick measured just before. A file within budget that
this host is too slow to finish before the container's wall limit ends with {"event": "stopped", "reason":
"host_slow"}: the grader reschedules it, it is not the student's time.
"""

from __future__ import annotations

import inspect
import io
import json
import math
import os
import signal
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the harness folder off sys.path

from harness_common import MEMORY_ERROR_EXIT_CODE, CappedWriter, parse_harness_args  # noqa: E402
from student_module import execute, new_module, parse  # noqa: E402

if __name__ == "__main__" and "--kit" in sys.argv[:-1]:
    # NumPy may live beside the kit (the unsafe test backend links it there): the kit path goes first.
    sys.path.insert(0, sys.argv[sys.argv.index("--kit") + 1])

import numpy as np  # noqa: E402
from calibration import YARDSTICK_BATCH, Yardstick, matmul_shapes, thread_count  # noqa: E402
from data_parallel import DataParallel, Replica, can_pin_blas, gradient_mismatch  # noqa: E402

FORMAT = 1
ERROR_TEXT_CHARS = 2000  # longest exception text handed back
PRINT_CAP_BYTES = 64 * 1024  # how much of the student's printing reaches the log

STUDENT_CLASSES = {"conv2d": ("Conv2D", "Conv2d"), "maxpool2d": ("MaxPool2D", "MaxPool2d"),
                   "avgpool2d": ("AvgPool2D", "AvgPool2d"), "flatten": ("Flatten",)}


class Deadline(BaseException):
    """Raised by SIGALRM (BaseException: `except Exception` in student code does not swallow it)."""


def _on_alarm(signum, frame):
    raise Deadline()


def _disarm() -> None:
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


def kit_helper_threads() -> int:
    """The kit's element-wise helper threads alive now (named "tinytorch...", reference/kit/tinytorch/core/
    _parallel.py), at most one fewer than the job's threads: a student thread that borrows the name hides only
    while the kit's own helpers have not started."""
    helpers = sum(1 for thread in threading.enumerate() if thread.name.startswith("tinytorch"))
    return min(helpers, max(0, job_threads() - 1))


def job_threads() -> int:
    """The threads the job was given (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS, set by the runner), else 1."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


# ----------------------------------------------------------------------------------------------------------
# The run


class MachineClock:
    """Converts this machine's wall seconds, at this moment, into reference seconds.

    The yardstick (the matrix products of a vectorized step, calibration.py) takes `reference_seconds` on an idle
    reference grading machine. When it takes three times that here and now, each wall second here and now is a
    third of a reference second. Budgets and projections are in reference seconds, so a busy host neither costs a
    correct file its points nor lets a slow one through on an idle host. The time spent on the yardstick itself
    is not charged.
    """

    KEEP = 5  # the factor is the median of this many recent measurements

    def __init__(self, yardstick: Yardstick, reference_seconds: float, baseline_threads: int):
        self.yardstick, self.reference_seconds = yardstick, reference_seconds
        self.baseline_threads = baseline_threads
        self.samples: list[float] = []
        self.tainted = False
        self.charged = 0.0
        self.mark = time.perf_counter()

    def calibrate(self) -> float:
        """Measure the yardstick once (seconds) and charge the time since the last measurement."""
        if self.baseline_threads and thread_count() - kit_helper_threads() > self.baseline_threads:
            # A thread of the submission's could slow the yardstick down and so make the submission look fast.
            self.tainted = True
        started = time.perf_counter()
        seconds = self.yardstick.measure()
        self.samples = (self.samples + [seconds])[-self.KEEP:]
        self.charged += (started - self.mark) / self.factor()
        self.mark = time.perf_counter()
        return seconds

    def factor(self) -> float:
        """How many times slower than the idle reference machine this one is now; never below 1 when tainted."""
        if not self.samples:
            return 1.0
        factor = float(np.median(self.samples)) / self.reference_seconds
        return max(factor, 1.0) if self.tainted else factor

    def charged_now(self) -> float:
        """Reference seconds used so far."""
        return self.charged + (time.perf_counter() - self.mark) / self.factor()


class Stop(Exception):
    """The run ends early (speed, budget, host, divergence); the event saying why is already written."""


class Trainer:
    """One training run: build the network, probe its speed against the yardstick, train, report."""

    def __init__(self, args, recipe: dict, init: dict, progress: Progress, baseline_threads: int = 0):
        self.args, self.recipe, self.init, self.progress = args, recipe, init, progress
        self.baseline_threads = baseline_threads
        self.started = time.perf_counter()
        self.result_path = os.path.join(args.out, "result.bin")
        self.step = 0
        self.ratios: list[float] = []  # probe: step time / yardstick time, interleaved
        self.probe_walls: list[float] = []
        self.parallel: DataParallel | None = None  # the data-parallel step, while it is on

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

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

    def write_params(self) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, **self.network.numpy_params())
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

    # -- setting up

    def plan(self) -> None:
        """Sizes, probe settings and budget from the recipe."""
        recipe = self.recipe
        self.batch_size, self.epochs = int(recipe["batch_size"]), int(recipe["epochs"])
        self.per_epoch = batches_per_epoch(len(self.labels), self.batch_size)
        if recipe.get("max_batches_per_epoch"):
            self.per_epoch = min(self.per_epoch, int(recipe["max_batches_per_epoch"]))
        self.total_steps = self.per_epoch * self.epochs
        # Tests and benchmarks run a few batches but may ask for the verdict on the full plan's length.
        self.budget_steps = int(recipe.get("budget_steps") or self.total_steps)
        self.budget = float(recipe["budget_seconds"])
        self.wall_limit = float(recipe.get("wall_seconds") or 0.0)
        probe = recipe.get("probe", {})
        self.warmup, self.probe_batches = int(probe.get("warmup_batches", 1)), int(probe.get("batches", 4))
        self.probe_until = self.warmup + self.probe_batches  # steps before this one are timed by the probe
        self.first_batch_seconds = float(probe.get("first_batch_seconds", 30.0))
        self.batch_cap_seconds = float(probe.get("batch_cap_seconds", 30.0))
        self.calibrate_every = max(1, int(probe.get("calibrate_every", 25)))
        self.report_every = int(recipe.get("report_every_batches", 20))
        self.mean = np.asarray(recipe["normalize"]["mean"], dtype=np.float64)
        self.std = np.asarray(recipe["normalize"]["std"], dtype=np.float64)

    def build(self, kit: Kit, module) -> None:
        """Network, loss, optimizer (student constructors run here, under a deadline) and the yardstick."""
        recipe = self.recipe
        signal.setitimer(signal.ITIMER_REAL, float(recipe.get("build_seconds", 30.0)))
        try:
            self.network = Network(kit, module, recipe["architecture"], self.init)
            self.loss_fn = kit.CrossEntropyLoss(label_smoothing=float(recipe.get("label_smoothing", 0.0)))
            self.optimizer = self.make_optimizer(kit, self.network)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.kit = kit
        calibration = recipe.get("calibration", {})
        yardstick = Yardstick(matmul_shapes(recipe["architecture"], YARDSTICK_BATCH))
        self.clock = MachineClock(yardstick, float(calibration.get("reference_seconds", 0.05)), self.baseline_threads)

    # -- the run

    def run(self, kit: Kit, module) -> int:
        np.random.seed(self.recipe["seed"] % 2**32)  # for student code that draws from the global generator
        self.rng = np.random.default_rng(self.recipe["seed"])
        self.images, self.labels = self.load_data()
        self.plan()
        self.build(kit, module)
        self.progress.say({"event": "start", "epochs": self.epochs, "batches": self.per_epoch,
                           "batch_size": self.batch_size, "train_images": int(len(self.labels)),
                           "budget_s": self.budget, **environment()}, essential=True)
        self.parallel = self.build_parallel(kit, module)
        self.clock.calibrate()
        self.last_calibration = (time.perf_counter(), 0)
        try:
            for epoch in range(1, self.epochs + 1):
                self.run_epoch(epoch)
        except Stop:
            return 0
        self.progress.say({"event": "done", "epochs": self.epochs, "train_s": round(self.elapsed(), 2),
                           "charged_s": round(self.clock.charged_now(), 2), "steps": self.step}, essential=True)
        return 0

    def run_epoch(self, epoch: int) -> None:
        epoch_start, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
        aug = self.recipe.get("augmentation", {})
        for index, batch in enumerate(epoch_batches(len(self.labels), self.batch_size, self.rng)):
            if index >= self.per_epoch:
                break
            x = normalize(augment(self.images[batch], self.rng, crop_padding=int(aug.get("crop_padding", 0)),
                                  flip=bool(aug.get("horizontal_flip", False))), self.mean, self.std)
            y = self.labels[batch]
            self.optimizer.lr = learning_rate(self.recipe["schedule"], self.step, self.total_steps)
            logits, loss = self.probe_step(x, y) if self.step < self.probe_until else self.train_step(x, y)
            self.step += 1
            loss_value = float(data_of(loss).reshape(-1)[0])
            if not math.isfinite(loss_value):
                self.progress.say({"event": "error", "kind": "diverged", "epoch": epoch, "batch": index + 1,
                                   "message": "the training loss became NaN or infinite"}, essential=True)
                self.write_params()
                raise Stop()
            correct += int((data_of(logits).argmax(axis=1) == y).sum())
            seen += len(y)
            loss_sum += loss_value * len(y)
            if self.step % self.calibrate_every == 0:
                self.recalibrate()
            if (index + 1) % self.report_every == 0 or index + 1 == self.per_epoch:
                self.report_batch(epoch, index, loss_sum / seen, correct / seen)
        self.end_epoch(epoch, loss_sum / max(seen, 1), correct / max(seen, 1), time.perf_counter() - epoch_start)

    def recalibrate(self) -> None:
        """Measure the yardstick again; past the probe, stop early when this host cannot finish in time."""
        now = time.perf_counter()
        wall_per_step = (now - self.last_calibration[0]) / max(1, self.step - self.last_calibration[1])
        self.clock.calibrate()
        self.last_calibration = (time.perf_counter(), self.step)
        if self.ratios and len(self.ratios) >= self.probe_batches:
            self.check_host(wall_per_step, self.clock.charged_now() / (self.step / self.budget_steps))

    def train_step(self, x, y):
        logits, loss = self.compute_gradients(x, y)
        self.optimizer.step()
        return logits, loss

    def compute_gradients(self, x, y):
        """Forward, loss and backward of the batch: the batch-mean gradient is left in the parameters' `.grad`.

        Split over the job's threads while the data-parallel step is on; an error there (which student code that
        is not thread-safe may raise) switches to one pass, which then decides whether the error is the file's.
        """
        if self.parallel is not None:
            try:
                return self.parallel.gradients(x, y)
            except Exception as error:
                self.fall_back(f"the step split over threads raised {describe(error)}")
        return self.one_pass_gradients(x, y)

    def one_pass_gradients(self, x, y):
        logits = self.network.forward(self.kit.Tensor(x))
        loss = self.loss_fn(logits, self.kit.Tensor(y))
        self.optimizer.zero_grad()
        loss.backward()
        return logits, loss

    def build_parallel(self, kit: Kit, module) -> DataParallel | None:
        """The data-parallel step over the job's threads (data_parallel.py), or None with the reason said.

        Each extra worker gets a replica network built from the student's module like the first (under the same
        deadline); any failure there only means training runs one pass, never a penalty.
        """
        workers, recipe = job_threads(), self.recipe
        reason = None
        if not recipe.get("data_parallel", True):
            reason = "switched off by the recipe"
        elif workers < 2:
            reason = "the job has one thread"
        elif not can_pin_blas():
            reason = "BLAS cannot be held to one thread per worker"
        if reason is None:
            signal.setitimer(signal.ITIMER_REAL, float(recipe.get("build_seconds", 30.0)))
            try:
                replicas = [Replica(Network(kit, module, recipe["architecture"], self.init),
                                    kit.CrossEntropyLoss(label_smoothing=float(recipe.get("label_smoothing", 0.0))))
                            for _ in range(workers - 1)]
                _disarm()
                parallel = DataParallel(kit.Tensor, [Replica(self.network, self.loss_fn)] + replicas)
            except BaseException as error:
                _disarm()
                reason = f"building a second copy of the network failed ({describe(error)})"
        if reason is not None:
            self.progress.say({"event": "data_parallel", "enabled": False, "workers": 1, "reason": reason},
                              essential=True)
            return None
        if self.clock.baseline_threads:
            self.clock.baseline_threads += len(parallel.workers)  # the harness's own threads, not the student's
        self.progress.say({"event": "data_parallel", "enabled": True, "workers": workers}, essential=True)
        return parallel

    def fall_back(self, reason: str) -> None:
        """Train one pass from now on (the data-parallel step is an optimisation, never the file's problem).

        The probe starts again after this step, so that what it projects is the one-pass step's time.
        """
        self.parallel = None
        self.ratios, self.probe_walls = [], []
        self.probe_until = self.step + 1 + self.probe_batches
        self.progress.say({"event": "data_parallel", "enabled": False, "workers": 1, "reason": reason[:300]},
                          essential=True)

    def check_parallel(self, x, y, limit: float) -> None:
        """On a probe batch, after the split step: the one-pass gradient of the same batch must agree with it.

        Code that keeps state outside its layer instances (a module-level cache) can mix the workers' shares; then
        the two gradients differ and training falls back to one pass for the whole run. Runs under its own
        deadline and puts the step's remaining deadline back; the gradient left for the step is the one-pass one.
        """
        split = {name: param.grad for name, param in self.network.params.items()}
        remaining = signal.setitimer(signal.ITIMER_REAL, limit)[0]
        try:
            self.one_pass_gradients(x, y)
            _disarm()
        except Deadline:
            for name, param in self.network.params.items():
                param.grad = split[name]
            self.fall_back("the one-pass check of the split step did not finish in time")
            return
        finally:
            _disarm()
            if remaining > 0:
                signal.setitimer(signal.ITIMER_REAL, remaining)
        mismatch = gradient_mismatch(split, {name: param.grad for name, param in self.network.params.items()})
        if mismatch:
            self.fall_back(f"the step split over threads gave a different gradient ({mismatch}): the file may keep "
                           "state outside its layers")

    def probe_step(self, x, y):
        """A step timed between two yardstick measurements, under a wall-clock deadline scaled to the machine."""
        before = self.clock.samples[-1]
        base = self.first_batch_seconds if self.step < self.warmup else max(self.budget / self.budget_steps * 20, 5.0)
        # One batch of a loop-style layer can take minutes; the cap keeps such a file's verdict within two minutes.
        limit = min(base * max(1.0, self.clock.factor()), self.batch_cap_seconds)
        signal.setitimer(signal.ITIMER_REAL, limit)
        started, checking, split = time.perf_counter(), 0.0, self.parallel is not None
        try:
            logits, loss = self.compute_gradients(x, y)
            if self.parallel is not None:
                check_started = time.perf_counter()
                self.check_parallel(x, y, limit)
                checking = time.perf_counter() - check_started
            self.optimizer.step()
        except Deadline:
            _disarm()
            # No step time to divide by a yardstick: the bound is in this machine's seconds.
            self.stop_slow(x, limit * self.budget_steps, f"one training batch took more than {limit:.0f} s",
                           lower_bound=True)
        finally:
            _disarm()
        seconds = time.perf_counter() - started - checking  # the step as trained, not its check
        after = self.clock.calibrate()
        if self.step >= self.warmup and (self.parallel is not None or not split):  # not a step that fell back
            # The faster of the two neighbours: a yardstick that happened to lose the CPU must not discount the step.
            self.ratios.append(seconds / min(before, after))
            self.probe_walls.append(seconds)
            if len(self.ratios) == self.probe_batches:
                self.judge_probe(x)
        return logits, loss

    def judge_probe(self, x) -> None:
        """Project the run in reference seconds from the probe's step/yardstick ratios; stop when over budget."""
        units = float(np.median(self.ratios))
        per_step = units * self.clock.reference_seconds
        remaining = self.budget_steps - self.step - 1
        projected = self.clock.charged_now() + per_step * remaining
        self.progress.say({"event": "probe", "batch_ms": round(per_step * 1000, 2),
                           "batch_wall_ms": round(float(np.median(self.probe_walls)) * 1000, 2),
                           "step_units": round(units, 3), "yardstick_ms": round(self.clock.samples[-1] * 1000, 2),
                           "load_factor": round(self.clock.factor(), 3), "tainted": self.clock.tainted,
                           "projected_s": round(projected, 3), "budget_s": self.budget}, essential=True)
        if projected > self.budget:
            self.stop_slow(x, projected, "projected training time over the budget")
        self.check_host(float(np.median(self.probe_walls)), projected)

    def check_host(self, wall_per_step: float, projected: float) -> None:
        """A file within budget that this host cannot finish before the wall limit is the host's problem."""
        if not self.wall_limit or self.clock.tainted:
            return
        projected_wall = self.elapsed() + wall_per_step * (self.total_steps - self.step)
        if projected_wall > 0.9 * self.wall_limit and projected <= self.budget:
            self.progress.say({"event": "stopped", "reason": "host_slow", "projected_s": round(projected, 1),
                               "projected_wall_s": round(projected_wall, 1), "budget_s": self.budget,
                               "load_factor": round(self.clock.factor(), 3), "elapsed_s": round(self.elapsed(), 1)},
                              essential=True)
            raise Stop()

    def report_batch(self, epoch: int, index: int, loss: float, accuracy: float) -> None:
        done = self.step / self.total_steps
        self.progress.say({"event": "batch", "epoch": epoch, "batch": index + 1, "batches": self.per_epoch,
                           "loss": round(loss, 5), "train_accuracy": round(accuracy, 5),
                           "elapsed_s": round(self.elapsed(), 2),
                           "projected_s": round(self.elapsed() / done, 1) if done else None})

    def end_epoch(self, epoch: int, loss: float, accuracy: float, seconds: float) -> None:
        """Save the parameters, report the epoch, stop when the budget is spent or the host is too slow."""
        charged = self.clock.charged_now()
        entry = {"event": "epoch", "epoch": epoch, "loss": round(loss, 5), "train_accuracy": round(accuracy, 5),
                 "lr": round(learning_rate(self.recipe["schedule"], max(self.step - 1, 0), self.total_steps), 6),
                 "epoch_s": round(seconds, 2), "elapsed_s": round(self.elapsed(), 2),
                 "projected_s": round(self.elapsed() / (self.step / self.total_steps), 1),
                 "charged_s": round(charged, 2), "load_factor": round(self.clock.factor(), 3)}
        self.write_params()
        self.progress.say(entry, essential=True)
        if epoch == self.epochs:
            return
        if charged > self.budget:
            self.progress.say({"event": "stopped", "reason": "budget", "epoch": epoch,
                               "elapsed_s": round(self.elapsed(), 1), "charged_s": round(charged, 1),
                               "budget_s": self.budget}, essential=True)
            raise Stop()
        self.check_host(seconds / self.per_epoch, charged / (self.step / self.budget_steps))

    def stop_slow(self, x, projected: float, reason: str, lower_bound: bool = False) -> None:
        """Over budget: measure each layer alone on this batch and report where the time goes."""
        self.progress.say({"event": "stopped", "reason": "speed", "detail": reason, "lower_bound": lower_bound,
                           "projected_s": round(projected, 1), "budget_s": self.budget,
                           "load_factor": round(self.clock.factor(), 3),
                           "elapsed_s": round(self.elapsed(), 1)}, essential=True)
        probe = self.recipe.get("probe", {})
        layers = profile_layers(self.kit, self.network, x, self.clock, float(probe.get("layer_seconds", 6.0)),
                                float(probe.get("profile_seconds", 35.0)))
        self.progress.say({"event": "layers", "batch_size": int(x.shape[0]), "layers": layers}, essential=True)
        raise Stop()


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


def profile_layers(kit: Kit, network: Network, x: np.ndarray, clock: MachineClock, layer_seconds: float,
                   total_seconds: float) -> list:
    """Forward and backward milliseconds of every layer alone, on that layer's input for the whole batch x.

    Each layer is timed on the full batch, right after a yardstick measurement (`calibration_ms`) so that the
    grader can compare it with a vectorized layer on the same machine at the same moment. Forward and backward
    each get their own SIGALRM deadline; a phase that runs out is reported as a lower bound (`limit_ms`, still
    for the full batch) and the next layer is timed on random input of the right shape. The whole profile is
    bounded by `total_seconds`.
    """
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
        limit = min(layer_seconds, left / 2)
        if record["student"]:
            record["calibration_ms"] = round(clock.calibrate() * 1000, 3)
        outcome = _time_layer(kit, layer, np.ascontiguousarray(activation), limit)
        record.update(samples=int(activation.shape[0]), status=outcome["status"])
        if "timed_out" in outcome:
            record["timed_out"] = outcome["timed_out"]
        for key in ("forward_ms", "backward_ms"):
            if key in outcome:
                record[key] = round(outcome[key], 3)
        if "error" in outcome:
            record["error"] = outcome["error"][:300]
        if outcome["status"] == "timeout":
            record["limit_ms"] = round(limit * 1000, 1)
        out = outcome.get("out")
        if out is None or out.shape[0] != activation.shape[0]:
            shape = output_shape(kind, kwargs, tuple(activation.shape))
            activation = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
            continue
        activation = out
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
    # The grader names the classes to look for (the spec's), as it does for the correctness job.
    for kind, names in dict(recipe.get("class_names", {})).items():
        if kind in STUDENT_CLASSES and isinstance(names, list) and all(isinstance(name, str) for name in names):
            STUDENT_CLASSES[kind] = tuple(names)
    loaded = np.load(os.path.join(args.inputs, "init.npz"), allow_pickle=False)
    init = {key: loaded[key] for key in loaded.files}
    progress = Progress(os.path.join(args.out, "progress.jsonl"), int(recipe.get("progress_line_bytes", 4096)),
                        int(recipe.get("progress_total_bytes", 1024 * 1024)))
    signal.signal(signal.SIGALRM, _on_alarm)
    kit = Kit()
    # Before the submission runs: the harness's and BLAS's own threads. The kit's element-wise helpers start later,
    # with the first large pass (if one ever comes), and are subtracted when they exist (kit_helper_threads).
    baseline_threads = thread_count()
    stderr_fd = os.dup(2)
    sys.stdout = CappedWriter(stderr_fd, PRINT_CAP_BYTES)
    sys.stderr = sys.stdout
    # Said before any student code runs: a job that wrote a line is past the harness's own start, so its exit is
    # never taken for a harness missing from the image (sandbox/core.py).
    progress.say({"event": "import"}, essential=True)
    module, error = import_submission(args.submission, float(recipe.get("import_seconds", 10.0)))
    if module is None:
        progress.say({"event": "error", **error}, essential=True)
        return 0
    trainer = Trainer(args, recipe, init, progress, baseline_threads)
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
