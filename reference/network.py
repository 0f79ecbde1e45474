"""Any SimpleCNN architecture (reference/architectures.py) on the fast reference layers: forward, backward, init.

`reference/simple_cnn.py` keeps its tuned path for the module text's network and comes here for the others.
Parameters are a dict of ndarrays named `<layer>.weight` / `<layer>.bias`, in the architecture's order.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from reference import layers_fast as layers
from reference.architectures import Architecture


INIT_SCHEMES = ("pytorch", "kaiming")


def init_params(architecture: Architecture, seed: int, dtype=np.float32, *, scheme: str = "pytorch"
                ) -> dict[str, np.ndarray]:
    """Initial parameters from `seed`.

    `pytorch`: PyTorch's default, U(+-1/sqrt(fan_in)) for weights and biases. `kaiming`: He's initialisation for
    ReLU networks, U(+-sqrt(6/fan_in)) weights and zero biases, which keeps the activations' scale through the
    layers of a network without normalisation, so a short training run starts learning sooner.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in architecture.parameter_shapes().items():
        fan_in = architecture.fan_in(name.split(".")[0])
        if scheme == "kaiming" and name.endswith(".bias"):
            params[name] = np.zeros(shape, dtype=dtype)
            continue
        bound = np.sqrt(6.0 / fan_in) if scheme == "kaiming" else 1.0 / np.sqrt(fan_in)
        params[name] = rng.uniform(-bound, bound, size=shape).astype(dtype)
    return params


def forward(architecture: Architecture, params: Mapping[str, np.ndarray], x: np.ndarray, *,
            softmax: bool = False, skip_last_relu: bool = False):
    """(output, caches): logits (N, classes) of images x (N, 3, 32, 32), computed in x's dtype.

    `softmax` turns the logits into probabilities and `skip_last_relu` leaves out the ReLU right before the last
    Linear layer: the outputs two known student mistakes produce, for the diagnosis.
    """
    caches = []
    last_relu = max((i for i, layer in enumerate(architecture.layers) if layer.kind == "relu"), default=-1)
    for index, layer in enumerate(architecture.layers):
        options = layer.options
        if layer.kind == "conv2d":
            x, cache = layers.conv2d_forward(x, params[f"{layer.name}.weight"], params[f"{layer.name}.bias"],
                                             stride=options.get("stride", 1), padding=options.get("padding", 0))
        elif layer.kind == "maxpool2d":
            x, cache = layers.maxpool2d_forward(x, kernel_size=options["kernel_size"], stride=options.get("stride"))
        elif layer.kind == "avgpool2d":
            x, cache = layers.avgpool2d_forward(x, kernel_size=options["kernel_size"], stride=options.get("stride"))
        elif layer.kind == "flatten":
            x, cache = layers.flatten_forward(x)
        elif layer.kind == "linear":
            cache = x
            x = x @ params[f"{layer.name}.weight"] + params[f"{layer.name}.bias"]
        elif layer.kind == "relu":
            if skip_last_relu and index == last_relu:
                cache = None
            else:
                cache = x > 0
                x = x * cache
        else:
            raise ValueError(f"unknown layer kind {layer.kind!r}")
        caches.append(cache)
    if softmax:
        shifted = np.exp(x - x.max(axis=1, keepdims=True))
        x = shifted / shifted.sum(axis=1, keepdims=True)
    return x, caches


def backward(architecture: Architecture, params: Mapping[str, np.ndarray], dout: np.ndarray, caches, *,
             need_dx: bool = True):
    """(dx, grads): gradients of the input and of every parameter, given dLoss/doutput and forward's caches."""
    grads: dict[str, np.ndarray] = {}
    for index in range(len(architecture.layers) - 1, -1, -1):
        layer, cache = architecture.layers[index], caches[index]
        first = index == 0
        if layer.kind == "conv2d":
            dout, grads[f"{layer.name}.weight"], grads[f"{layer.name}.bias"] = layers.conv2d_backward(
                dout, cache, need_dx=need_dx or not first)
        elif layer.kind == "maxpool2d":
            dout = layers.maxpool2d_backward(dout, cache)
        elif layer.kind == "avgpool2d":
            dout = layers.avgpool2d_backward(dout, cache)
        elif layer.kind == "flatten":
            dout = layers.flatten_backward(dout, cache)
        elif layer.kind == "linear":
            grads[f"{layer.name}.weight"] = cache.T @ dout
            grads[f"{layer.name}.bias"] = dout.sum(axis=0)
            dout = dout @ params[f"{layer.name}.weight"].T
        elif layer.kind == "relu" and cache is not None:
            dout = dout * cache
    return dout, {name: grads[name] for name in architecture.parameter_shapes()}


def predict(architecture: Architecture, params: Mapping[str, np.ndarray], x: np.ndarray,
            batch_size: int = 1000) -> np.ndarray:
    """Logits for images x (N, 3, 32, 32), batch by batch."""
    dtype = params[next(iter(architecture.parameter_shapes()))].dtype
    logits = np.empty((x.shape[0], architecture.num_classes), dtype=dtype)
    for start in range(0, x.shape[0], batch_size):
        logits[start:start + batch_size] = forward(architecture, params,
                                                   x[start:start + batch_size].astype(dtype, copy=False))[0]
    return logits
