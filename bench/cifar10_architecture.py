"""Test accuracy of a spec's SimpleCNN architecture under its CIFAR-10 recipe, with the reference layers.

For specs whose network is not the module text's (grader/specs/current_course.toml, an instructor's layer list):
trains `reference.network` exactly as the training harness would (same augmentation, normalization, schedule,
initialisation, data order), outside any sandbox, and records test accuracy per epoch, so the spec's
full_accuracy / partial_accuracy bands can be set from a measurement. Writes bench/results/cifar10_<arch>.json.

    python -m bench.cifar10_architecture --spec grader/specs/current_course.toml [--seed 0] [--epochs 12]
        [--engine torch]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

from bench.cifar10_seeds import load_harness  # noqa: E402
from bench.machine_load import open_window  # noqa: E402
from grader.settings import get_settings  # noqa: E402
from grader.spec import load_spec  # noqa: E402
from grader.training.evaluation import ensure_dataset  # noqa: E402
from grader.training.recipe import StageConfig  # noqa: E402
from reference import network, simple_cnn  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class TorchEngine:
    """The same network, loss and SGD rule in PyTorch (CPU), for when CPU time is short; evaluation stays with
    the reference network. Parameters keep the shared layout (Linear weight (in, out))."""

    def __init__(self, architecture, params: dict, recipe: dict):
        import torch

        self.torch, self.architecture, self.recipe = torch, architecture, recipe
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        self.tensors = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
        opt = recipe["optimizer"]
        self.optimizer = torch.optim.SGD(list(self.tensors.values()), lr=0.0, momentum=opt["momentum"],
                                         nesterov=opt["nesterov"], weight_decay=opt["weight_decay"])

    def forward(self, x):
        functional = self.torch.nn.functional
        h = self.torch.from_numpy(x)
        for layer in self.architecture.layers:
            options, p = layer.options, self.tensors
            if layer.kind == "conv2d":
                h = functional.conv2d(h, p[f"{layer.name}.weight"], p[f"{layer.name}.bias"],
                                      stride=options.get("stride", 1), padding=options.get("padding", 0))
            elif layer.kind == "relu":
                h = functional.relu(h)
            elif layer.kind in ("maxpool2d", "avgpool2d"):
                pool = functional.max_pool2d if layer.kind == "maxpool2d" else functional.avg_pool2d
                h = pool(h, options["kernel_size"], options.get("stride"))
            elif layer.kind == "flatten":
                h = h.reshape(h.shape[0], -1)
            else:
                h = h @ p[f"{layer.name}.weight"] + p[f"{layer.name}.bias"]
        return h

    def step(self, x, y, lr):
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        logits = self.forward(x)
        loss = self.torch.nn.functional.cross_entropy(logits, self.torch.from_numpy(y),
                                                      label_smoothing=self.recipe["label_smoothing"])
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.detach()), logits.detach().numpy()

    def params(self) -> dict:
        return {name: tensor.detach().numpy().copy() for name, tensor in self.tensors.items()}


def train(spec_path: Path, seed: int, epochs: int | None, eval_from: int, log=print, engine: str = "reference"
          ) -> dict:
    spec = load_spec(spec_path)
    architecture = spec.architecture
    config = StageConfig.from_spec(spec.stages["cifar10"], get_settings(), architecture=architecture,
                                   flatten=spec.correctness.flatten)
    recipe = dict(config.recipe)
    if epochs:
        recipe["epochs"] = epochs
    harness = load_harness()
    data = ensure_dataset(get_settings())
    params = simple_cnn.init_params(seed, architecture=architecture)
    rng = np.random.default_rng(seed)
    images, labels = np.asarray(data.train_images()), data.train_labels().astype(np.int64)
    mean, std = np.asarray(recipe["normalize"]["mean"]), np.asarray(recipe["normalize"]["std"])
    test_x = harness.normalize(np.asarray(data.test_images()), mean, std)
    test_y = data.test_labels().astype(np.int64)
    batch_size, total_epochs = recipe["batch_size"], recipe["epochs"]
    total = harness.batches_per_epoch(len(labels), batch_size) * total_epochs
    opt, aug = recipe["optimizer"], recipe["augmentation"]
    state: dict = {}
    torch_engine = TorchEngine(architecture, params, recipe) if engine == "torch" else None
    step, curve = 0, []
    window = open_window()
    started = time.perf_counter()
    for epoch in range(1, total_epochs + 1):
        epoch_start = time.perf_counter()
        loss_sum = correct = seen = 0
        for batch in harness.epoch_batches(len(labels), batch_size, rng):
            x = harness.normalize(harness.augment(images[batch], rng, crop_padding=aug["crop_padding"],
                                                  flip=aug["horizontal_flip"]), mean, std)
            y = labels[batch]
            lr = harness.learning_rate(recipe["schedule"], step, total)
            if torch_engine is not None:
                loss, logits = torch_engine.step(x, y, lr)
            else:
                logits, caches = network.forward(architecture, params, x)
                loss, dlogits = simple_cnn.softmax_cross_entropy(logits, y, recipe["label_smoothing"])
                _, grads = network.backward(architecture, params, dlogits, caches, need_dx=False)
                simple_cnn.sgd_step(params, grads, state, lr=lr, momentum=opt["momentum"],
                                    weight_decay=opt["weight_decay"], nesterov=opt["nesterov"])
            step += 1
            loss_sum += loss * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
        entry = {"epoch": epoch, "loss": round(loss_sum / seen, 4), "train_accuracy": round(correct / seen, 4),
                 "epoch_s": round(time.perf_counter() - epoch_start, 1)}
        if torch_engine is not None:
            params = torch_engine.params()
        if epoch >= eval_from or epoch == total_epochs:
            predicted = network.predict(architecture, params, test_x).argmax(1)
            entry["test_accuracy"] = float((predicted == test_y).mean())
        curve.append(entry)
        log(f"{architecture.name} seed {seed} epoch {epoch}: {entry}", flush=True)
    window.close()
    return {"benchmark": "cifar10_architecture", "spec": str(spec_path), "architecture": architecture.describe(),
            "engine": engine, "seed": seed, "recipe": recipe, "test_accuracy": curve[-1]["test_accuracy"],
            "full_accuracy": config.full_accuracy, "partial_accuracy": config.partial_accuracy,
            "train_s": round(time.perf_counter() - started, 1), "machine": window.as_dict(), "curve": curve}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--eval-from", type=int, default=4)
    parser.add_argument("--engine", choices=("reference", "torch"), default="reference",
                        help="reference: NumPy reference layers; torch: the same recipe in PyTorch CPU (faster)")
    args = parser.parse_args()
    report = train(args.spec, args.seed, args.epochs, args.eval_from, engine=args.engine)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"cifar10_{load_spec(args.spec).architecture.name}_{args.engine}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"test accuracy {report['test_accuracy']:.4f} after {len(report['curve'])} epochs "
          f"({report['train_s']} s); written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
