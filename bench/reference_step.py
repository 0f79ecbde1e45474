"""One SimpleCNN training step (batch 128, float32, 2 threads): NumPy reference vs PyTorch CPU, with a per-layer split.

Run: `.venv/bin/python -m bench.reference_step [--steps 60]` (BENCH_THREADS=1 for a one-thread comparison).
Prints a table and writes bench/results/reference_step.json. Both implementations get the same threads (BLAS,
element-wise passes) and the same malloc setting (`reference.parallel.reuse_freed_memory`). Timings are medians
over many steps, in interleaved reference/PyTorch blocks; CPU seconds per step are recorded too. The ratio is
printed only when the machine was quiet (bench.machine_load: load average <= 1.5 before the run, other processes
using almost no CPU during it); otherwise the benchmark says why it withholds it.
"""

from __future__ import annotations

import os
import sys

# 2 threads is the setting; BENCH_THREADS=1 gives steadier figures when other jobs load the machine.
THREADS = int(os.environ.get("BENCH_THREADS", "2"))
# BLAS reads its thread count when NumPy/PyTorch load, so this must run before either is imported.
if "numpy" in sys.modules or "torch" in sys.modules:
    print("warning: numpy/torch imported before bench.reference_step; thread settings may not apply", file=sys.stderr)
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(THREADS)
# OpenBLAS's idle worker otherwise spins for ~0.1 s after every matmul, on the core the reference's element-wise
# threads need (reference.parallel explains); 2^4 cycles means it sleeps at once. PyTorch keeps its defaults.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from bench.machine_load import measure_quietly, ratio_text, wait_until_quiet  # noqa: E402
from reference import simple_cnn  # noqa: E402
from reference.parallel import can_pin_blas_per_thread, num_threads, reuse_freed_memory  # noqa: E402

BATCH = 128
RESULTS = Path(__file__).resolve().parent / "results" / "reference_step.json"
LAYERS = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1", "relu3", "fc2"]
# The reference runs conv1, relu1 and pool1 as one fused pass; its table row is compared with PyTorch's three.
FUSED = {"conv1": ("conv1", "relu1", "pool1")}
TARGET_RATIO = 1.2


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def reference_step(params, state, x, labels, profile=None, workers=None) -> float:
    """One training step as the reference trains (`simple_cnn.train_gradients`: the batch split over the threads).

    With a `profile` dict it runs the one-pass forward/backward instead, which times each layer.
    """
    if profile is None:
        loss, _, grads = simple_cnn.train_gradients(params, x, labels, workers=workers)
    else:
        logits, cache = simple_cnn.forward(params, x, profile=profile)
        loss, dlogits = simple_cnn.softmax_cross_entropy(logits, labels)
        grads = simple_cnn.backward(dlogits, cache, profile=profile)
    simple_cnn.sgd_step(params, grads, state, lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    return loss


def torch_model(params):
    import torch
    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4096, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(params["conv1.weight"]))
        model[0].bias.copy_(torch.from_numpy(params["conv1.bias"]))
        model[3].weight.copy_(torch.from_numpy(params["conv2.weight"]))
        model[3].bias.copy_(torch.from_numpy(params["conv2.bias"]))
        model[7].weight.copy_(torch.from_numpy(params["fc1.weight"].T.copy()))
        model[7].bias.copy_(torch.from_numpy(params["fc1.bias"]))
        model[9].weight.copy_(torch.from_numpy(params["fc2.weight"].T.copy()))
        model[9].bias.copy_(torch.from_numpy(params["fc2.bias"]))
    return model


def torch_layer_split(model, x, repeats: int) -> dict[str, float]:
    """Median ms of each torch layer's forward and backward, timed one layer at a time on its real input shape."""
    import torch

    split = {}
    activation = x
    for index, (name, layer) in enumerate(zip(LAYERS, model)):
        layer_input = activation.detach().requires_grad_(index > 0)
        forward_times, backward_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            out = layer(layer_input)
            middle = time.perf_counter()
            out.backward(torch.ones_like(out))
            end = time.perf_counter()
            forward_times.append(middle - start)
            backward_times.append(end - middle)
            model.zero_grad(set_to_none=True)
            layer_input.grad = None
        split[f"{name}.forward"] = 1000 * statistics.median(forward_times)
        split[f"{name}.backward"] = 1000 * statistics.median(backward_times)
        with torch.no_grad():
            activation = layer(activation)
    return split


def sgemm_gflops() -> float:
    """float32 matmul throughput of NumPy's BLAS (2048^3), the ceiling for the reference's convolutions."""
    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    a @ a
    times = []
    for _ in range(5):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return 2 * 2048**3 / min(times) / 1e9


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed steps per implementation")
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
    # Both implementations run in this process, so both get the recycled heap memory.
    malloc_tuned = reuse_freed_memory()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, BATCH)
    params = simple_cnn.init_params(0, np.float32)
    model = torch_model(params)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4, nesterov=True)
    loss_fn = torch.nn.CrossEntropyLoss()
    x_torch, labels_torch = torch.from_numpy(x), torch.from_numpy(labels)

    def torch_step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_torch), labels_torch)
        loss.backward()
        optimizer.step()

    state: dict = {}
    for _ in range(3):
        reference_step(params, state, x, labels)
        torch_step()
    def measure():
        reference_times, torch_times, reference_cpu, torch_cpu = [], [], [], []
        block = 5
        for _ in range(max(1, args.steps // block)):
            for step, times, cpu_times in ((lambda: reference_step(params, state, x, labels), reference_times,
                                            reference_cpu), (torch_step, torch_times, torch_cpu)):
                for _ in range(block):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    step()
                    times.append(time.perf_counter() - start)
                    cpu_times.append(time.process_time() - start_cpu)
        return reference_times, torch_times, reference_cpu, torch_cpu

    (reference_times, torch_times, reference_cpu, torch_cpu), window, attempts = measure_quietly(
        measure, retries=args.retries, wait_s=args.retry_wait)
    profiles = []
    for _ in range(max(5, args.steps // 4)):
        profile: dict[str, float] = {}
        reference_step(params, state, x, labels, profile=profile)
        profiles.append(profile)
    reference_split = {key: 1000 * statistics.median(p[key] for p in profiles) for key in profiles[0]}
    torch_split = torch_layer_split(model, x_torch, repeats=max(5, args.steps // 4))

    def summary(times):
        ms = sorted(1000 * t for t in times)
        return {"median": statistics.median(ms), "p25": ms[len(ms) // 4], "p75": ms[(3 * len(ms)) // 4],
                "min": ms[0]}

    result = {
        "benchmark": "SimpleCNN training step (forward, cross-entropy, backward, SGD-Nesterov update)",
        "batch": BATCH, "dtype": "float32", "threads": THREADS, "steps": len(reference_times),
        "reference_ms": summary(reference_times), "torch_ms": summary(torch_times),
        "ratio_median": statistics.median(reference_times) / statistics.median(torch_times),
        "ratio_min": min(reference_times) / min(torch_times),
        # CPU seconds (all threads) per step: far less sensitive than wall time to other jobs on the cores.
        "reference_cpu_ms": summary(reference_cpu), "torch_cpu_ms": summary(torch_cpu),
        "cpu_ratio_median": statistics.median(reference_cpu) / statistics.median(torch_cpu),
        "load_average_1min": window.load_before, "machine": window.as_dict(), "attempts": attempts,
        "ratio_reported": window.quiet, "ratio_text": ratio_text(statistics.median(reference_times)
                                                                 / statistics.median(torch_times), window,
                                                                 TARGET_RATIO),
        "target_ratio": TARGET_RATIO,
        "openblas_thread_timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
        "reference_layers_ms": reference_split, "torch_layers_ms_isolated": torch_split,
        "numpy_sgemm_gflops": sgemm_gflops(),
        "reference_elementwise_threads": num_threads(), "malloc_reuse_freed_memory": malloc_tuned,
        "numpy": np.__version__, "torch": torch.__version__, "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "reference_workers": num_threads() if can_pin_blas_per_thread() else 1,
        "note": "medians over interleaved blocks. The reference step splits the batch over its threads "
                "(simple_cnn.train_gradients); its per-layer figures come from one-pass steps on the whole batch "
                "with BLAS and element-wise passes spread over the threads. Torch per-layer figures are timed one "
                "layer at a time and do not sum exactly to its step",
    }
    _print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return result


def _print_table(result: dict) -> None:
    ref, tor = result["reference_ms"], result["torch_ms"]
    load = result["machine"]
    print(f"SimpleCNN training step, batch {result['batch']}, float32, {result['threads']} threads, "
          f"{result['steps']} steps each (median [p25-p75] ms; load average {load['load_average_before']:.2f} before)")
    print(f"  reference (NumPy) {ref['median']:7.1f} [{ref['p25']:.1f}-{ref['p75']:.1f}]")
    print(f"  PyTorch CPU       {tor['median']:7.1f} [{tor['p25']:.1f}-{tor['p75']:.1f}]")
    print(f"  ratio             {result['ratio_text']}")
    print(f"  CPU ms/step       {result['reference_cpu_ms']['median']:7.1f} vs {result['torch_cpu_ms']['median']:.1f}"
          f"  ({result['cpu_ratio_median']:.2f}x)")
    print(f"  NumPy sgemm       {result['numpy_sgemm_gflops']:7.0f} GFLOP/s")
    print(f"  {'layer':<19}{'ref fwd':>9}{'ref bwd':>9}{'torch fwd':>11}{'torch bwd':>11}   (ms)")
    ref_split, torch_split = result["reference_layers_ms"], result["torch_layers_ms_isolated"]
    folded = {name for parts in FUSED.values() for name in parts[1:]}
    for layer in LAYERS:
        if layer in folded:
            continue
        parts = FUSED.get(layer, (layer,))
        label = "+".join(parts)
        print(f"  {label:<19}{ref_split.get(layer + '.forward', 0):9.2f}{ref_split.get(layer + '.backward', 0):9.2f}"
              f"{sum(torch_split.get(p + '.forward', 0) for p in parts):11.2f}"
              f"{sum(torch_split.get(p + '.backward', 0) for p in parts):11.2f}")
    print(f"  {'sum':<19}{sum(v for k, v in ref_split.items() if k.endswith('forward')):9.2f}"
          f"{sum(v for k, v in ref_split.items() if k.endswith('backward')):9.2f}"
          f"{sum(v for k, v in torch_split.items() if k.endswith('forward')):11.2f}"
          f"{sum(v for k, v in torch_split.items() if k.endswith('backward')):11.2f}")


if __name__ == "__main__":
    main()
