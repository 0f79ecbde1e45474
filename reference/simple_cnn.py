"""The module's SimpleCNN on the fast reference layers: init, forward, backward, loss, optimizer steps, predict.

Architecture (module 09): Conv 3->32 k3 p1, ReLU, MaxPool 2, Conv 32->64 k3 p1, ReLU, MaxPool 2, Flatten,
Linear 4096->128, ReLU, Linear 128->10, on (N, 3, 32, 32) inputs. Linear is y = x @ W + b with W of shape
(in_features, out_features). Parameters are a plain dict of ndarrays under the names in `PARAM_SHAPES`, the same
names the course kit, the training harness and the `.npz` hand-back use.

Other architectures (the current course's, an instructor's layer list: reference/architectures.py) are
accepted by `init_params`, `validate_params` and `predict` through `architecture=`, and run on the generic
layer-list network in reference/network.py.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Mapping

import numpy as np

from reference import layers_fast as layers
from reference import parallel
from reference import network
from reference.architectures import MODULE_TEXT, Architecture

PARAM_SHAPES: dict[str, tuple[int, ...]] = {
    "conv1.weight": (32, 3, 3, 3),
    "conv1.bias": (32,),
    "conv2.weight": (64, 32, 3, 3),
    "conv2.bias": (64,),
    "fc1.weight": (4096, 128),
    "fc1.bias": (128,),
    "fc2.weight": (128, 10),
    "fc2.bias": (10,),
}
INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
# Fan-in of each parameter's layer: PyTorch's default init draws weights and biases from U(-1/sqrt(fan_in), +).
_FAN_IN = {"conv1": 3 * 3 * 3, "conv2": 32 * 3 * 3, "fc1": 4096, "fc2": 128}


def _other(architecture: Architecture | None) -> bool:
    return architecture is not None and architecture != MODULE_TEXT


def init_params(seed: int, dtype=np.float32, *, architecture: Architecture | None = None,
                scheme: str = "pytorch") -> dict[str, np.ndarray]:
    """PyTorch-default initialisation (kaiming_uniform with a=sqrt(5), i.e. U(+-1/sqrt(fan_in))) from `seed`;
    other schemes as in `network.init_params`."""
    if _other(architecture) or scheme != "pytorch":
        return network.init_params(architecture or MODULE_TEXT, seed, dtype, scheme=scheme)
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in PARAM_SHAPES.items():
        bound = 1.0 / np.sqrt(_FAN_IN[name.split(".")[0]])
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


def validate_params(params: Mapping[str, np.ndarray], *, architecture: Architecture | None = None) -> list[str]:
    """Problems that make `params` unusable as SimpleCNN weights (empty list: fine).

    Checks exact names, shapes, a floating dtype (float32 or float64) and that every value is finite.
    """
    shapes = architecture.parameter_shapes() if architecture is not None else PARAM_SHAPES
    problems = []
    names = set(params)
    expected = set(shapes)
    for name in sorted(expected - names):
        problems.append(f"missing parameter {name!r} (expected shape {shapes[name]})")
    for name in sorted(names - expected):
        problems.append(f"unexpected parameter {name!r}; expected exactly {sorted(expected)}")
    for name in sorted(names & expected):
        value = params[name]
        if not isinstance(value, np.ndarray):
            problems.append(f"{name} is a {type(value).__name__}, expected a NumPy array")
            continue
        if value.dtype not in (np.float32, np.float64):
            problems.append(f"{name} has dtype {value.dtype}, expected float32 or float64")
            continue
        if value.shape != shapes[name]:
            problems.append(f"{name} has shape {value.shape}, expected {shapes[name]}")
            continue
        if not np.all(np.isfinite(value)):
            problems.append(f"{name} contains NaN or infinite values")
    return problems


def _check_input(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"x must have shape (N, 3, 32, 32), got {x.shape}")
    return x.astype(dtype, copy=False)


@contextmanager
def _timed(profile: dict | None, key: str):
    """Add the block's wall time in seconds to profile[key] (no-op when profile is None)."""
    if profile is None:
        yield
        return
    start = time.perf_counter()
    yield
    profile[key] = profile.get(key, 0.0) + time.perf_counter() - start


def forward(params: Mapping[str, np.ndarray], x, *, train: bool = True, profile: dict | None = None):
    """Logits (N, 10) for images x (N, 3, 32, 32); the cache for `backward` (None when train is False).

    With a `profile` dict, each layer's forward seconds are added under "<layer>.forward" (layers: conv1, conv2,
    pool2, relu2, flatten, fc1, relu3, fc2). conv1 includes relu1 and pool1: the three run as one pass
    (`layers_fast.conv2d_relu_maxpool2x2_forward`). relu2 runs after its pool, on the 4x smaller map: ReLU and
    max-pooling commute (both monotone, and ReLU's zero gradient also zeroes a pooled non-positive window), so
    values and gradients are identical.
    """
    x = _check_input(x, params["conv1.weight"].dtype)
    with _timed(profile, "conv1.forward"):
        relu1, conv1_cache = layers.conv2d_relu_maxpool2x2_forward(x, params["conv1.weight"], params["conv1.bias"],
                                                                   padding=1)
    with _timed(profile, "conv2.forward"):
        conv2, conv2_cache = layers.conv2d_forward(relu1, params["conv2.weight"], params["conv2.bias"], stride=1,
                                                   padding=1)
    with _timed(profile, "pool2.forward"):
        pool2, pool2_cache = layers.maxpool2d_forward(conv2, kernel_size=2)
    with _timed(profile, "relu2.forward"):
        relu2 = np.maximum(pool2, 0, out=pool2)
    with _timed(profile, "flatten.forward"):
        flat, flat_cache = layers.flatten_forward(relu2)
    with _timed(profile, "fc1.forward"):
        fc1 = flat @ params["fc1.weight"]
        fc1 += params["fc1.bias"]
    with _timed(profile, "relu3.forward"):
        relu3 = np.maximum(fc1, 0, out=fc1)
    with _timed(profile, "fc2.forward"):
        logits = relu3 @ params["fc2.weight"]
        logits += params["fc2.bias"]
    if not train:
        return logits, None
    cache = {
        "params": params, "conv1": conv1_cache, "conv2": conv2_cache,
        "relu2": relu2, "pool2": pool2_cache, "flat": flat_cache, "flat_out": flat, "relu3": relu3,
    }
    return logits, cache


def backward(dlogits, cache, *, profile: dict | None = None) -> dict[str, np.ndarray]:
    """Gradients of the loss w.r.t. every parameter, given dLoss/dlogits (N, 10) and forward's cache.

    With a `profile` dict, each layer's backward seconds are added under "<layer>.backward".
    """
    params = cache["params"]
    dtype = params["fc2.weight"].dtype
    dlogits = np.asarray(dlogits, dtype=dtype)
    grads = {}
    relu3 = cache["relu3"]
    with _timed(profile, "fc2.backward"):
        grads["fc2.weight"] = relu3.T @ dlogits
        grads["fc2.bias"] = dlogits.sum(axis=0)
        drelu3 = dlogits @ params["fc2.weight"].T
    with _timed(profile, "relu3.backward"):
        drelu3 *= relu3 > 0
    with _timed(profile, "fc1.backward"):
        grads["fc1.weight"] = cache["flat_out"].T @ drelu3
        grads["fc1.bias"] = drelu3.sum(axis=0)
        dflat = drelu3 @ params["fc1.weight"].T
    with _timed(profile, "flatten.backward"):
        drelu2 = layers.flatten_backward(dflat, cache["flat"])
    with _timed(profile, "relu2.backward"):
        dpool2 = drelu2 * (cache["relu2"] > 0)
    with _timed(profile, "pool2.backward"):
        dconv2 = layers.maxpool2d_backward(dpool2, cache["pool2"])
    with _timed(profile, "conv2.backward"):
        drelu1, grads["conv2.weight"], grads["conv2.bias"] = layers.conv2d_backward(dconv2, cache["conv2"])
    with _timed(profile, "conv1.backward"):
        # The input image needs no gradient, so the first convolution skips dx (PyTorch does the same).
        _, grads["conv1.weight"], grads["conv1.bias"] = layers.conv2d_relu_maxpool2x2_backward(
            drelu1, cache["conv1"], need_dx=False)
    return {name: grads[name] for name in PARAM_SHAPES}


# Below this many images per worker, splitting a batch costs more than it saves.
MIN_IMAGES_PER_WORKER = 16


def train_gradients(params: Mapping[str, np.ndarray], x, labels, *, label_smoothing: float = 0.0,
                    workers: int | None = None):
    """Loss, logits and parameter gradients of one training batch, the batch split over `workers` threads.

    Each worker runs forward, loss and backward on its slice of the batch on one core (its NumPy passes and BLAS
    calls stay on its thread), then the slices' gradients are summed: the same values as one pass over the whole
    batch up to float rounding, with no hand-over between cores inside a layer. Used for training; `forward` and
    `backward` remain the one-pass API.

    Args:
        params: the SimpleCNN parameters.
        x: images (N, 3, 32, 32); labels: (N,) integers.
        label_smoothing: as in `softmax_cross_entropy`.
        workers: threads to split over; default `reference.parallel.num_threads()` when OpenBLAS can be held to one
            thread per worker, else 1 (one pass, with BLAS and element-wise passes spread as usual).

    Returns:
        (loss, logits, grads): the batch-mean loss (float), logits (N, 10), gradients by parameter name.
    """
    x = _check_input(x, params["conv1.weight"].dtype)
    labels = np.asarray(labels)
    n_batch = x.shape[0]
    if workers is None:
        workers = parallel.num_threads() if parallel.can_pin_blas_per_thread() else 1
    workers = max(1, min(workers, n_batch // MIN_IMAGES_PER_WORKER))
    if workers == 1:
        logits, cache = forward(params, x)
        loss, dlogits = softmax_cross_entropy(logits, labels, label_smoothing)
        return loss, logits, backward(dlogits, cache)
    bounds = [n_batch * k // workers for k in range(workers + 1)]

    def work(index: int):
        part = slice(bounds[index], bounds[index + 1])
        logits, cache = forward(params, x[part])
        loss, dlogits = softmax_cross_entropy(logits, labels[part], label_smoothing)
        share = (part.stop - part.start) / n_batch  # each slice's mean, weighted to the batch mean
        dlogits *= dlogits.dtype.type(share)
        return loss * share, logits, backward(dlogits, cache)

    results = parallel.map_workers(work, workers)
    grads = results[0][2]
    for _, _, other in results[1:]:
        for name, value in other.items():
            grads[name] += value
    return sum(loss for loss, _, _ in results), np.concatenate([logits for _, logits, _ in results]), grads


def predict(params: Mapping[str, np.ndarray], x, batch_size: int = 1000, *,
            architecture: Architecture | None = None) -> np.ndarray:
    """Logits (N, 10) for preprocessed float images x (N, 3, 32, 32), computed batch by batch without caches."""
    problems = validate_params(params, architecture=architecture)
    if problems:
        raise ValueError("invalid SimpleCNN parameters: " + "; ".join(problems))
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1:] != INPUT_SHAPE:
        raise ValueError(f"x must have shape (N, 3, 32, 32), got {x.shape}")
    if _other(architecture):
        return network.predict(architecture, params, x, batch_size)
    dtype = params["conv1.weight"].dtype
    logits = np.empty((x.shape[0], NUM_CLASSES), dtype=dtype)
    for start in range(0, x.shape[0], batch_size):
        logits[start:start + batch_size], _ = forward(params, x[start:start + batch_size], train=False)
    return logits


def softmax_cross_entropy(logits, labels, label_smoothing: float = 0.0):
    """Mean cross-entropy of softmax(logits) against integer labels, like torch.nn.CrossEntropyLoss.

    Args:
        logits: (N, K) scores.
        labels: (N,) integers in [0, K).
        label_smoothing: eps in [0, 1): the target is (1 - eps) * one_hot + eps / K.

    Returns:
        (loss, dlogits): the scalar mean loss (Python float) and its gradient w.r.t. logits, shape (N, K).
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {logits.shape}")
    n_batch, n_classes = logits.shape
    if labels.shape != (n_batch,) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be integers of shape ({n_batch},), got {labels.dtype} {labels.shape}")
    if n_batch and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{labels.min()}, {labels.max()}]")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    target = np.full_like(log_probs, label_smoothing / n_classes)
    target[np.arange(n_batch), labels] += 1.0 - label_smoothing
    loss = float(-(target * log_probs).sum() / n_batch)
    dlogits = (np.exp(log_probs) - target) / n_batch
    return loss, dlogits.astype(logits.dtype, copy=False)


def sgd_step(params: dict, grads: Mapping, state: dict, *, lr: float, momentum: float = 0.9,
             weight_decay: float = 0.0, nesterov: bool = True) -> None:
    """One in-place SGD step with PyTorch's momentum/Nesterov/weight-decay semantics; `state` holds the buffers.

    Intermediate values go to two scratch arrays per parameter kept in `state`, so a step allocates nothing.
    """
    for name, param in params.items():
        grad = grads[name]
        kind = param.dtype.type
        first, second = _scratch(state, name, param)
        if weight_decay:
            np.multiply(param, kind(weight_decay), out=first)
            first += grad
            grad = first
        update = grad
        if momentum:
            buffer = state.get(name)
            if buffer is None:
                buffer = state[name] = grad.astype(param.dtype, copy=True)
            else:
                buffer *= momentum
                buffer += grad
            if nesterov:
                np.multiply(buffer, kind(momentum), out=second)
                second += grad
                update = second
            else:
                update = buffer
        np.multiply(update, kind(lr), out=second)
        param -= second


def _scratch(state: dict, name: str, param: np.ndarray):
    pair = state.get(("scratch", name))
    if pair is None or pair[0].shape != param.shape or pair[0].dtype != param.dtype:
        pair = state[("scratch", name)] = (np.empty_like(param), np.empty_like(param))
    return pair


def adam_step(params: dict, grads: Mapping, state: dict, *, lr: float, betas: tuple[float, float] = (0.9, 0.999),
              eps: float = 1e-8, weight_decay: float = 0.0) -> None:
    """One in-place Adam step (PyTorch semantics, L2 weight decay added to the gradient); `state` holds moments."""
    beta1, beta2 = betas
    step = state["step"] = state.get("step", 0) + 1
    for name, param in params.items():
        grad = grads[name]
        if weight_decay:
            grad = grad + weight_decay * param
        first = state.setdefault(("m", name), np.zeros_like(param))
        second = state.setdefault(("v", name), np.zeros_like(param))
        first *= beta1
        first += (1 - beta1) * grad
        second *= beta2
        second += (1 - beta2) * grad * grad
        denominator = np.sqrt(second / (1 - beta2**step)) + eps
        param -= (lr / (1 - beta1**step)) * first / denominator
