"""The training harness's data-parallel step (sandbox/harness/data_parallel.py) against its one-pass step.

The harness's Trainer runs in this process on a small random data set (no sandbox: what is tested is the step's
arithmetic and its fall-backs, not isolation), with the job's two threads, the real kit and real student files.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import simple_cnn
from reference.architectures import MODULE_TEXT
from sandbox.runner import KIT_DIR
from tests.sandbox.helpers import load_harness_module

ROOT = Path(__file__).resolve().parents[2]
GOOD_VECTORIZED = ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py"
REFERENCE_LAYERS = ROOT / "bench" / "reference_spatial.py"  # the reference's layers through the kit's Function API
BATCH = 40
IMAGES = 3 * BATCH + 33  # three full batches (shares of 20) and a last one of 33 (shares of 16 and 17)

# A Flatten that keeps its input in a module-level cache and reads it back in backward: right in one pass (the
# mask only zeroes gradients the ReLU before it zeroes anyway), wrong when two shares run at once (each share's
# backward reads whichever input was cached last). The pause makes both shares' forwards overlap.
RACY_FLATTEN = '''
import time as _time
_CACHE = {}


class _FlattenFunction(Function):
    def apply(self, grad_output):
        return (grad_output.reshape(_CACHE["x"].shape) * (_CACHE["x"] != 0),)


class Flatten(Module):
    def forward(self, x):
        _CACHE["x"] = x.data
        _time.sleep(0.2)
        out = Tensor(x.data.reshape(x.shape[0], -1), requires_grad=x.requires_grad)
        out._grad_fn = _FlattenFunction(x)
        return out
'''

# A Conv2D whose constructor refuses to run more than twice (one network): the replica cannot be built.
SINGLE_NETWORK_CONV = '''
_BUILT = []
_OneConv2D = Conv2D


class Conv2D(_OneConv2D):
    def __init__(self, *args, **kwargs):
        if len(_BUILT) >= 2:
            raise RuntimeError("this file builds one network only")
        _BUILT.append(True)
        super().__init__(*args, **kwargs)
'''


@pytest.fixture(scope="module")
def harness():
    if str(KIT_DIR) not in sys.path:
        sys.path.insert(0, str(KIT_DIR))
    return load_harness_module("training.py", "training_harness_dp")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "cifar10").mkdir()
    rng = np.random.default_rng(3)
    np.save(root / "cifar10" / "train_images.npy", rng.integers(0, 256, (IMAGES, 3, 32, 32), dtype=np.uint8))
    np.save(root / "cifar10" / "train_labels.npy", rng.integers(0, 10, IMAGES).astype(np.uint8))
    return root


@pytest.fixture(autouse=True)
def job_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    previous = signal.getsignal(signal.SIGALRM)
    yield
    signal.signal(signal.SIGALRM, previous)
    for name in ("tinytorch.core.spatial", "spatial"):
        sys.modules.pop(name, None)


def train(harness, data_dir: Path, tmp_path: Path, source: str, *, data_parallel: bool = True,
          architecture: list | None = None):
    """Train one epoch of the source through the harness's Trainer; (final parameters, progress events)."""
    submission, out = tmp_path / "spatial.py", tmp_path / f"out-{data_parallel}-{architecture is None}"
    submission.write_text(source)
    out.mkdir()
    recipe = {"seed": 0, "epochs": 1, "batch_size": BATCH, "label_smoothing": 0.1, "augmentation": {},
              "optimizer": {"kind": "sgd", "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
              "schedule": {"kind": "constant", "lr": 0.05}, "budget_seconds": 1e6, "report_every_batches": 1,
              "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
              "architecture": architecture or MODULE_TEXT.as_recipe("class"), "probe": {"warmup_batches": 1, "batches": 1},
              "data_parallel": data_parallel}
    init = simple_cnn.init_params(0, np.float32)
    signal.signal(signal.SIGALRM, harness._on_alarm)
    module, error = harness.import_submission(str(submission), 10.0)
    assert error is None, error
    progress = harness.Progress(str(out / "progress.jsonl"), 4096, 1 << 20)
    args = argparse.Namespace(data=str(data_dir), out=str(out))
    trainer = harness.Trainer(args, recipe, init, progress, baseline_threads=0)
    assert trainer.run(harness.Kit(), module) == 0
    progress.handle.close()
    events = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "done" and events[-1]["steps"] == 4, events[-3:]
    loaded = np.load(out / "result.bin")
    return {name: loaded[name] for name in loaded.files}, events


@pytest.mark.parametrize("path", [REFERENCE_LAYERS, GOOD_VECTORIZED], ids=["reference_layers", "good_vectorized"])
def test_relu_after_the_max_pool_trains_the_same_parameters_as_the_module_text_order(harness, data_dir, tmp_path,
                                                                                      path):
    as_written = [[layer.kind, layer.name, layer.options] for layer in MODULE_TEXT.layers]
    training = MODULE_TEXT.as_recipe("class")
    assert [kind for kind, _, _ in training] != [kind for kind, _, _ in as_written]  # the order did change
    source = path.read_text()
    literal, _ = train(harness, data_dir, tmp_path, source, architecture=as_written)
    swapped, _ = train(harness, data_dir, tmp_path, source)
    initial = simple_cnn.init_params(0, np.float32)
    for name, value in literal.items():
        assert not np.array_equal(value, initial[name]), name  # training moved it
        np.testing.assert_array_equal(swapped[name], value, err_msg=name)


def switches(events: list[dict]) -> list[dict]:
    return [event for event in events if event["event"] == "data_parallel"]


def assert_same_parameters(split: dict, one_pass: dict, initial: dict) -> None:
    for name, value in one_pass.items():
        assert not np.array_equal(value, initial[name]), name  # training moved it
        np.testing.assert_allclose(split[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("path", [REFERENCE_LAYERS, GOOD_VECTORIZED], ids=["reference_layers", "good_vectorized"])
def test_split_steps_train_the_same_parameters_as_one_pass(harness, data_dir, tmp_path, path):
    source = path.read_text()
    one_pass, events = train(harness, data_dir, tmp_path, source, data_parallel=False)
    assert switches(events) == [{"event": "data_parallel", "enabled": False, "workers": 1,
                                 "reason": "switched off by the recipe"}]
    split, events = train(harness, data_dir, tmp_path, source)
    # On all the way: the probe batches' one-pass check agreed, the last batch (33) was split 16 + 17.
    assert switches(events) == [{"event": "data_parallel", "enabled": True, "workers": 2}]
    assert_same_parameters(split, one_pass, simple_cnn.init_params(0, np.float32))


def test_a_module_level_cache_that_races_falls_back_to_one_pass(harness, data_dir, tmp_path):
    source = GOOD_VECTORIZED.read_text() + RACY_FLATTEN
    split, events = train(harness, data_dir, tmp_path, source)
    assert [event["enabled"] for event in switches(events)] == [True, False]
    assert "different gradient" in switches(events)[1]["reason"], switches(events)
    assert not any(event["event"] in ("error", "stopped") for event in events)
    # The probe timed the one-pass steps after the fall-back, so its projection is the run's.
    kinds = [event["event"] for event in events]
    assert kinds.count("probe") == 1 and kinds.index("probe") > events.index(switches(events)[1])
    one_pass, _ = train(harness, data_dir, tmp_path, source, data_parallel=False)
    assert_same_parameters(split, one_pass, simple_cnn.init_params(0, np.float32))


def test_a_constructor_that_fails_for_the_replica_falls_back_to_one_pass(harness, data_dir, tmp_path):
    source = GOOD_VECTORIZED.read_text() + SINGLE_NETWORK_CONV
    split, events = train(harness, data_dir, tmp_path, source)
    [switch] = switches(events)
    assert switch["enabled"] is False and "building a second copy" in switch["reason"], switch
    assert "this file builds one network only" in switch["reason"]
    one_pass, _ = train(harness, data_dir, tmp_path, source, data_parallel=False)
    assert_same_parameters(split, one_pass, simple_cnn.init_params(0, np.float32))


@pytest.mark.parametrize("shares", [[0.5, 0.5], [1 / 3, 1 / 3, 1 / 3], [16 / 33, 17 / 33]])
def test_weighted_sum_of_share_gradients(harness, shares):
    """Equal shares take the sum-then-scale path, unequal ones scale each gradient; both leave the inputs alone."""
    import data_parallel  # the harness's, on sys.path since the harness module loaded

    rng = np.random.default_rng(len(shares))
    grads = [rng.standard_normal((64, 3)).astype(np.float32) for _ in shares]
    copies = [grad.copy() for grad in grads]
    total = data_parallel.weighted_sum(list(zip(grads, shares)))
    expected = sum(np.float64(share) * grad.astype(np.float64) for grad, share in zip(grads, shares))
    assert total.dtype == np.float32 and all(total is not grad for grad in grads)
    np.testing.assert_allclose(total, expected, rtol=1e-6, atol=1e-6)
    for grad, copy in zip(grads, copies):
        np.testing.assert_array_equal(grad, copy)
    assert data_parallel.weighted_sum([]) is None
    np.testing.assert_array_equal(data_parallel.weighted_sum([(grads[0], 0.5)]), grads[0] * np.float32(0.5))
