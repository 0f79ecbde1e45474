"""One SimpleCNN training step through the course kit with the fast fixture submission, vs PyTorch CPU.

What a correct, fast student file costs per step inside the training harness: good_vectorized.py's
Conv2D/MaxPool2D/Flatten with the kit's Linear, ReLU, CrossEntropyLoss and SGD (Nesterov, weight decay),
batch 128, float32, 2 BLAS threads. Also times the NumPy reference step (reference/simple_cnn.py) when
it is importable, in interleaved blocks with the others so that load from other processes hits all alike.

Run: `.venv/bin/python -m bench.kit_step [--steps 40]`. Prints a table and writes bench/results/kit_step.json.
"""

from __future__ import annotations

import os
import sys

THREADS = 2
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)

try:  # before NumPy, so that bench.reference_step sees the thread settings untouched
    from bench.reference_step import reference_step as _reference_step
    from reference import simple_cnn as _simple_cnn
except Exception as _error:  # the reference is another helper's work and may be absent or changing
    _reference_step = _simple_cnn = None
    _reference_error = _error

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
KIT_DIR = ROOT / "reference" / "kit"
SUBMISSION = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
RESULTS = Path(__file__).resolve().parent / "results" / "kit_step.json"
BATCH = 128
LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]

sys.path.insert(0, str(KIT_DIR))

from tinytorch.core import autograd  # noqa: E402
from tinytorch.core.losses import CrossEntropyLoss  # noqa: E402
from tinytorch.core.optimizers import SGD  # noqa: E402
from tinytorch.core.tensor import Tensor  # noqa: E402


def load_submission(path: Path):
    spec = importlib.util.spec_from_file_location("spatial", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class KitStep:
    """The training step the harness runs, with optional per-layer timing."""

    def __init__(self, submission, x, labels):
        np.random.seed(0)
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


def time_backward_functions(modules, split):
    """Wrap every Function.apply in `modules` so its time is added to split['<Class>.backward']."""
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, autograd.Function) and "apply" in cls.__dict__:
                original = cls.apply

                def timed(self, grad_output, _original=original, _name=cls.__name__):
                    start = time.perf_counter()
                    result = _original(self, grad_output)
                    split[f"{_name}.backward"].append(time.perf_counter() - start)
                    return result

                cls.apply = timed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per implementation")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(THREADS)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, BATCH)
    submission = load_submission(SUBMISSION)
    kit_step = KitStep(submission, x, labels)

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

    steps = {"kit": kit_step, "torch": torch_step}
    if _reference_step is not None:
        params, state = _simple_cnn.init_params(0, np.float32), {}
        steps["reference"] = lambda: _reference_step(params, state, x, labels)
    else:
        print(f"(reference step not timed: {_reference_error})")

    for step in steps.values():
        for _ in range(3):
            step()
    wall, cpu = defaultdict(list), defaultdict(list)
    block = 5
    for _ in range(max(1, args.steps // block)):
        for name, step in steps.items():
            for _ in range(block):
                start, start_cpu = time.perf_counter(), time.process_time()
                step()
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

    split = defaultdict(list)
    kit_step.split = split
    time_backward_functions([submission, sys.modules["tinytorch.core.tensor"], sys.modules["tinytorch.core.layers"],
                             sys.modules["tinytorch.core.losses"]], split)
    for _ in range(max(5, args.steps // 4)):
        kit_step()
    kit_split = {key: 1000 * statistics.fmean(values) * (len(values) / max(5, args.steps // 4))
                 for key, values in split.items()}

    result = {
        "benchmark": "SimpleCNN training step with the course kit and tests/fixtures/submissions/good_vectorized.py",
        "batch": BATCH, "dtype": "float32", "threads": THREADS, "steps": len(wall["kit"]),
        "wall_ms_median": {name: 1000 * statistics.median(times) for name, times in wall.items()},
        "wall_ms_min": {name: 1000 * min(times) for name, times in wall.items()},
        "cpu_ms_median": {name: 1000 * statistics.median(times) for name, times in cpu.items()},
        "kit_over_torch_median": statistics.median(wall["kit"]) / statistics.median(wall["torch"]),
        "kit_over_torch_min": min(wall["kit"]) / min(wall["torch"]),
        "kit_split_ms_per_step": dict(sorted(kit_split.items(), key=lambda item: -item[1])),
        "load_average_1min": os.getloadavg()[0],
        "numpy": np.__version__, "torch": torch.__version__,
        "note": "interleaved blocks of 5 steps on 2 cores shared with other work; the split is measured in "
                "separate steps (backward entries are per Function class, summed over its calls in a step)",
    }
    if "reference" in wall:
        result["kit_over_reference_median"] = statistics.median(wall["kit"]) / statistics.median(wall["reference"])
    _print(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def _print(result: dict) -> None:
    print(f"SimpleCNN step, batch {result['batch']}, float32, {result['threads']} threads, {result['steps']} steps each")
    for name in result["wall_ms_median"]:
        print(f"  {name:10s} median {result['wall_ms_median'][name]:7.1f} ms  min {result['wall_ms_min'][name]:7.1f} ms"
              f"  cpu {result['cpu_ms_median'][name]:7.1f} ms")
    print(f"  kit / torch: {result['kit_over_torch_median']:.2f}x (median), {result['kit_over_torch_min']:.2f}x (min)")
    if "kit_over_reference_median" in result:
        print(f"  kit / reference: {result['kit_over_reference_median']:.2f}x (median)")
    print(f"  load average {result['load_average_1min']:.1f}; kit split (ms per step):")
    for key, value in result["kit_split_ms_per_step"].items():
        print(f"    {key:28s} {value:7.2f}")


if __name__ == "__main__":
    main()
