"""One SimpleCNN training step through the course kit, vs the NumPy reference's own step and PyTorch CPU.

Two student files are trained through the kit (its Tensor, autograd, Linear, ReLU, CrossEntropyLoss and SGD with
Nesterov and weight decay), batch 128, float32, 2 threads, exactly as the training harness steps: the harness's
data-parallel step (sandbox/harness/data_parallel.py, imported from there with the harness's Network) splits the
batch into one share per thread, each through its own replica of the student's network, and averages the shares'
gradients into one optimizer step, as the reference's own step does (`simple_cnn.train_gradients`):
- `bench/reference_spatial.py`: the reference's own fast layers wrapped through the kit's Function API. The layers
  are held fixed, so its step over the reference's step (`kit_overhead_median`) is what the kit itself costs
  (target <= 1.15x);
- `tests/fixtures/submissions/good_vectorized.py`: what a good student's file costs (no target).
Each file's one-pass kit step (what the harness falls back to) is timed too (`*_one_pass`), so the split's gain is
visible, and so is the reference's one-pass step. All steps run in interleaved blocks. Ratios are printed only
when the machine was quiet (bench.machine_load).

Run: `.venv/bin/python -m bench.kit_step [--steps 40]`. Prints a table and writes bench/results/kit_step.json.
"""

from __future__ import annotations

import os
import sys

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")  # as bench.reference_step (same process settings for all)

from bench.reference_step import reference_step  # noqa: E402  (after the thread settings, before NumPy)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KIT_DIR = ROOT / "reference" / "kit"
GOOD_SUBMISSION = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
REFERENCE_SUBMISSION = ROOT / "bench" / "reference_spatial.py"
TARGET_KIT_OVERHEAD = 1.15
RESULTS = Path(__file__).resolve().parent / "results" / "kit_step.json"
BATCH = 128
LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]

sys.path.insert(0, str(KIT_DIR))

from bench.machine_load import measure_quietly, ratio_text, wait_until_quiet  # noqa: E402
from reference import simple_cnn  # noqa: E402
from reference.architectures import MODULE_TEXT  # noqa: E402
from reference.parallel import reuse_freed_memory, single_threaded  # noqa: E402
from sandbox.runner import HARNESS_DIR  # noqa: E402
from tinytorch.core import autograd  # noqa: E402
from tinytorch.core.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.core.optimizers import SGD  # noqa: E402
from tinytorch.core.tensor import Tensor  # noqa: E402


def load_submission(path: Path):
    spec = importlib.util.spec_from_file_location(f"spatial_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class KitStep:
    """The training step the harness runs, with optional per-layer timing."""

    def __init__(self, submission, x, labels):
        np.random.seed(0)
        self.submission = submission
        self.net = submission.SimpleCNN()
        self.parameters = [getattr(getattr(self.net, layer), name) for layer in ("conv1", "conv2", "fc1", "fc2")
                           for name in ("weight", "bias")]
        self.optimizer = SGD(self.parameters, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        self.loss_fn = CrossEntropyLoss()
        self.x, self.labels = x, labels
        self.split = None

    def __call__(self):
        h = Tensor(self.x)
        for name in LAYERS:
            start = time.perf_counter()
            h = getattr(self.net, name)(h)
            if self.split is not None:
                self.split[f"{name}.forward"].append(time.perf_counter() - start)
        start = time.perf_counter()
        loss = self.loss_fn(h, self.labels)
        self.optimizer.zero_grad()
        loss.backward()
        middle = time.perf_counter()
        self.optimizer.step()
        if self.split is not None:
            self.split["loss+backward"].append(middle - start)
            self.split["optimizer"].append(time.perf_counter() - middle)
        return loss


def load_harness():
    """The training harness module (sandbox/harness/training.py), which puts its folder on sys.path."""
    spec = importlib.util.spec_from_file_location("training_harness", HARNESS_DIR / "training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DataParallelKitStep:
    """The harness's data-parallel step: the harness's Network per worker, its DataParallel, one SGD step."""

    def __init__(self, submission, x, labels, workers: int = THREADS):
        harness = load_harness()
        import data_parallel  # the harness's, on sys.path since load_harness

        kit = harness.Kit()
        init = simple_cnn.init_params(0, np.float32)
        architecture = MODULE_TEXT.as_recipe("class")
        members = [data_parallel.Replica(harness.Network(kit, submission, architecture, init), kit.CrossEntropyLoss())
                   for _ in range(workers)]

        @contextmanager
        def worker_context():
            # The reference's layers (bench/reference_spatial.py) split passes over reference.parallel's own pool;
            # a student's layers in the sandbox have only the kit's, which data_parallel.pinned holds already.
            with data_parallel.pinned(), single_threaded():
                yield

        self.parallel = data_parallel.DataParallel(kit.Tensor, members, worker_context=worker_context)
        self.optimizer = kit.SGD(members[0].network.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                                 weight_decay=5e-4)
        self.x, self.labels = x, labels

    def __call__(self):
        _, loss = self.parallel.gradients(self.x, self.labels)
        self.optimizer.step()
        return loss


def time_backward_functions(modules, split):
    """Wrap every Function.apply in `modules` so its time is added to split['<Class>.backward'].

    Returns a function that puts the original `apply` methods back.
    """
    originals = []
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, autograd.Function) and "apply" in cls.__dict__:
                original = cls.apply
                originals.append((cls, original))

                def timed(self, grad_output, _original=original, _name=cls.__name__):
                    start = time.perf_counter()
                    result = _original(self, grad_output)
                    split[f"{_name}.backward"].append(time.perf_counter() - start)
                    return result

                cls.apply = timed

    def restore():
        for cls, original in originals:
            cls.apply = original

    return restore


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per implementation")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="seconds to wait for a quiet machine (load average <= 1.5) before measuring")
    parser.add_argument("--retries", type=int, default=1,
                        help="measure again this many times when the machine was busy (after waiting for quiet)")
    parser.add_argument("--retry-wait", type=float, default=300.0,
                        help="seconds to wait for a quiet machine before each retry")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.wait:
        wait_until_quiet(timeout_s=args.wait)

    import torch

    torch.set_num_threads(THREADS)
    malloc_tuned = reuse_freed_memory()  # as bench.reference_step and the sandbox (sandbox.core.MALLOC_TUNABLES)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, BATCH)
    kit_reference = KitStep(load_submission(REFERENCE_SUBMISSION), x, labels)
    kit_good = KitStep(load_submission(GOOD_SUBMISSION), x, labels)
    split_reference = DataParallelKitStep(kit_reference.submission, x, labels)
    split_good = DataParallelKitStep(kit_good.submission, x, labels)

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(4096, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    torch_optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x_torch, labels_torch = torch.from_numpy(x), torch.from_numpy(labels)

    def torch_step():
        torch_optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x_torch), labels_torch)
        loss.backward()
        torch_optimizer.step()

    params, state = simple_cnn.init_params(0, np.float32), {}
    steps = {"kit_reference_layers": split_reference, "kit_reference_layers_one_pass": kit_reference,
             "reference": lambda: reference_step(params, state, x, labels),
             "reference_one_pass": lambda: reference_step(params, state, x, labels, workers=1),
             "kit_good_vectorized": split_good, "kit_good_vectorized_one_pass": kit_good, "torch": torch_step}
    for step in steps.values():
        for _ in range(3):
            step()
    def measure():
        wall, cpu = defaultdict(list), defaultdict(list)
        block = 5
        for _ in range(max(1, args.steps // block)):
            for name, step in steps.items():
                for _ in range(block):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    step()
                    wall[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - start_cpu)
        return wall, cpu

    (wall, cpu), window, attempts = measure_quietly(measure, retries=args.retries, wait_s=args.retry_wait)

    splits = {}
    repeats = max(5, args.steps // 4)
    for name, kit_step, modules in (("kit_reference_layers_one_pass", kit_reference, [kit_reference.submission]),
                                    ("kit_good_vectorized_one_pass", kit_good, [kit_good.submission])):
        split = defaultdict(list)
        kit_step.split = split
        restore = time_backward_functions(modules + [sys.modules["tinytorch.core.tensor"],
                                                     sys.modules["tinytorch.core.layers"],
                                                     sys.modules["tinytorch.core.losses"]], split)
        for _ in range(repeats):
            kit_step()
        restore()
        kit_step.split = None
        splits[name] = dict(sorted(((key, 1000 * sum(values) / repeats) for key, values in split.items()),
                                   key=lambda item: -item[1]))

    median = {name: statistics.median(times) for name, times in wall.items()}
    overhead = median["kit_reference_layers"] / median["reference"]
    result = {
        "benchmark": "SimpleCNN training step through the course kit: the reference's layers wrapped as a student "
                     "file (kit overhead) and good_vectorized.py, vs the reference's step and PyTorch",
        "batch": BATCH, "dtype": "float32", "threads": THREADS, "steps": len(wall["reference"]),
        "wall_ms_median": {name: 1000 * value for name, value in median.items()},
        "wall_ms_min": {name: 1000 * min(times) for name, times in wall.items()},
        "cpu_ms_median": {name: 1000 * statistics.median(times) for name, times in cpu.items()},
        "kit_overhead_median": overhead,
        "kit_overhead_text": ratio_text(overhead, window, TARGET_KIT_OVERHEAD),
        "target_kit_overhead": TARGET_KIT_OVERHEAD,
        # Both split the batch over the threads; one pass each (layers parallel inside) for comparison.
        "kit_overhead_one_pass_median": median["kit_reference_layers_one_pass"] / median["reference_one_pass"],
        "kit_split_gain_median": median["kit_reference_layers_one_pass"] / median["kit_reference_layers"],
        "good_split_gain_median": median["kit_good_vectorized_one_pass"] / median["kit_good_vectorized"],
        "good_over_reference_median": median["kit_good_vectorized"] / median["reference"],
        "good_over_torch_median": median["kit_good_vectorized"] / median["torch"],
        "kit_reference_layers_over_torch_median": median["kit_reference_layers"] / median["torch"],
        "reference_over_torch_median": median["reference"] / median["torch"],
        "ratios_reported": window.quiet, "machine": window.as_dict(), "attempts": attempts,
        "kit_split_ms_per_step": splits,
        "load_average_1min": window.load_before, "malloc_reuse_freed_memory": malloc_tuned,
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "numpy": np.__version__, "torch": torch.__version__,
        "note": "interleaved blocks of 5 steps; the kit_* rows are the harness's data-parallel step, *_one_pass the "
                "one-pass step it falls back to; the per-layer split is of the one-pass steps, measured in separate "
                "steps (backward entries are per Function class, summed over its calls in a step)",
    }
    _print(result, window)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def _print(result: dict, window) -> None:
    print(f"SimpleCNN step, batch {result['batch']}, float32, {result['threads']} threads, {result['steps']} steps "
          f"each ({window.describe()})")
    for name in result["wall_ms_median"]:
        print(f"  {name:22s} median {result['wall_ms_median'][name]:7.1f} ms  min {result['wall_ms_min'][name]:7.1f} ms"
              f"  cpu {result['cpu_ms_median'][name]:7.1f} ms")
    print(f"  kit overhead (reference layers through the kit / reference step): {result['kit_overhead_text']}")
    print(f"  one pass each (kit one-pass step / reference one-pass step): "
          f"{ratio_text(result['kit_overhead_one_pass_median'], window)}")
    print(f"  split gain (one-pass kit step / data-parallel kit step): reference layers "
          f"{ratio_text(result['kit_split_gain_median'], window)}, good_vectorized.py "
          f"{ratio_text(result['good_split_gain_median'], window)}")
    for label, key in (("good_vectorized.py through the kit / reference", "good_over_reference_median"),
                       ("good_vectorized.py through the kit / PyTorch", "good_over_torch_median"),
                       ("reference / PyTorch", "reference_over_torch_median")):
        print(f"  {label}: {ratio_text(result[key], window)}")
    for name, split in result["kit_split_ms_per_step"].items():
        print(f"  {name} split (ms per step):")
        for key, value in split.items():
            print(f"    {key:28s} {value:7.2f}")


if __name__ == "__main__":
    main()
