"""README tables (markdown) for the compute benchmarks, from bench/results/*.json, idle-machine results only.

Run after `python -m bench.reference_step`, `python -m bench.kit_step` and `python -m bench.cifar10_seeds` on an idle
machine: `python -m bench.readme_tables`. A result measured on a busy machine (bench.machine_load) is not turned
into a table; the output says so instead, so the README keeps idle figures only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _load(name: str) -> dict | None:
    try:
        return json.loads((RESULTS / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def reference_step_table(result: dict) -> list[str]:
    machine = result["machine"]
    ref, tor = result["reference_ms"]["median"], result["torch_ms"]["median"]
    lines = [f"`python -m bench.reference_step --steps {result['steps']}` ({result['threads']} thread(s), load average "
             f"{machine['load_average_before']:.2f} before, other processes {machine['other_processes_cores']} cores):",
             "", "| | reference (NumPy) | PyTorch CPU | ratio |", "|---|---|---|---|",
             f"| SimpleCNN step, batch 128, float32 | {ref:.1f} ms | {tor:.1f} ms | **{ref / tor:.2f}x** "
             f"(target <= {result['target_ratio']}x) |"]
    split, torch_split = result["reference_layers_ms"], result["torch_layers_ms_isolated"]
    rows = [("conv1 + relu1 + pool1 (fused)", "conv1", ("conv1", "relu1", "pool1")), ("conv2", "conv2", ("conv2",)),
            ("pool2", "pool2", ("pool2",)), ("relu2", "relu2", ("relu2",)), ("flatten", "flatten", ("flatten",)),
            ("fc1", "fc1", ("fc1",)), ("relu3 + fc2", "fc2", ("relu3", "fc2"))]
    lines += ["", "| layer | reference forward / backward (ms) | PyTorch forward / backward (ms, layer alone) |",
              "|---|---|---|"]
    for label, key, torch_keys in rows:
        forward = split.get(f"{key}.forward", 0.0) + (split.get("relu3.forward", 0.0) if key == "fc2" else 0.0)
        backward = split.get(f"{key}.backward", 0.0) + (split.get("relu3.backward", 0.0) if key == "fc2" else 0.0)
        lines.append(f"| {label} | {forward:.2f} / {backward:.2f} | "
                     f"{sum(torch_split.get(k + '.forward', 0.0) for k in torch_keys):.2f} / "
                     f"{sum(torch_split.get(k + '.backward', 0.0) for k in torch_keys):.2f} |")
    return lines


def kit_step_table(result: dict) -> list[str]:
    machine = result["machine"]
    wall = result["wall_ms_median"]
    return [f"`python -m bench.kit_step --steps {result['steps']}` ({result['threads']} thread(s), load average "
            f"{machine['load_average_before']:.2f} before):", "",
            "| step | median | over the reference | over PyTorch |", "|---|---|---|---|",
            f"| reference's layers through the kit (`bench/reference_spatial.py`) | {wall['kit_reference_layers']:.1f} ms"
            f" | **{result['kit_overhead_median']:.2f}x** (`kit_overhead_median`, target <= "
            f"{result['target_kit_overhead']}x) | {result['kit_reference_layers_over_torch_median']:.2f}x |",
            f"| `good_vectorized.py` through the kit | {wall['kit_good_vectorized']:.1f} ms | "
            f"{result['good_over_reference_median']:.2f}x | {result['good_over_torch_median']:.2f}x |",
            f"| ... each in one pass (what the harness falls back to): reference's layers / `good_vectorized.py` | "
            f"{wall['kit_reference_layers_one_pass']:.1f} / {wall['kit_good_vectorized_one_pass']:.1f} ms | "
            f"{wall['kit_reference_layers_one_pass'] / wall['reference']:.2f}x / "
            f"{wall['kit_good_vectorized_one_pass'] / wall['reference']:.2f}x | "
            f"{wall['kit_reference_layers_one_pass'] / wall['torch']:.2f}x / "
            f"{wall['kit_good_vectorized_one_pass'] / wall['torch']:.2f}x |",
            f"| reference step (batch split over the threads) | {wall['reference']:.1f} ms | 1.00x | "
            f"{result['reference_over_torch_median']:.2f}x |",
            f"| reference one-pass step (layers parallel inside) | {wall['reference_one_pass']:.1f} ms | "
            f"{wall['reference_one_pass'] / wall['reference']:.2f}x (kit one-pass over it: "
            f"{result['kit_overhead_one_pass_median']:.2f}x) | {wall['reference_one_pass'] / wall['torch']:.2f}x |",
            f"| PyTorch | {wall['torch']:.1f} ms | | 1.00x |"]


def cifar10_seeds_table(result: dict) -> list[str]:
    lines = [f"`python -m bench.cifar10_seeds --seeds {' '.join(str(run['seed']) for run in result['runs'])}` "
             f"({result['recipe']['epochs']} epochs, batch {result['recipe']['batch_size']}):", "",
             "| seed | test accuracy | run (training + final evaluation) | load average before |", "|---|---|---|---|"]
    for run in result["runs"]:
        lines.append(f"| {run['seed']} | {100 * run['test_accuracy']:.2f}% | {run['run_s']:.0f} s "
                     f"({run['run_s'] / 60:.2f} min) | {run['machine']['load_average_before']:.2f} |")
    summary = result["summary"]
    lines += ["", f"Mean {100 * summary['mean']:.2f}%, spread {100 * summary['min']:.2f}-{100 * summary['max']:.2f}% "
                  f"(stdev {100 * summary['stdev']:.2f} points)."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    for name, table, quiet in (
            ("reference_step", reference_step_table, lambda r: r["machine"]["quiet"]),
            ("kit_step", kit_step_table, lambda r: r["machine"]["quiet"]),
            ("cifar10_seeds", cifar10_seeds_table, lambda r: r.get("summary", {}).get("all_quiet", False))):
        result = _load(name)
        print(f"\n<!-- bench/results/{name}.json -->")
        if result is None or "machine" not in result and name != "cifar10_seeds":
            print(f"(no usable bench/results/{name}.json: run `python -m bench.{name}`)")
        elif not quiet(result):
            print(f"(bench/results/{name}.json was measured on a busy machine: re-run `python -m bench.{name}` on an "
                  "idle one)")
        else:
            print("\n".join(table(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
