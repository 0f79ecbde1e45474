"""SimpleCNN run: the module's network built from the student's classes, with parameters set by the grader."""

from __future__ import annotations

import numpy as np

from grader.checks import PreparedRun, Run, Variant, make_input, upcast
from reference import layers_fast as ref

PARAMETER_SHAPES = {
    "conv1.weight": (32, 3, 3, 3), "conv1.bias": (32,),
    "conv2.weight": (64, 32, 3, 3), "conv2.bias": (64,),
    "fc1.weight": (4096, 128), "fc1.bias": (128,),
    "fc2.weight": (128, 10), "fc2.bias": (10,),
}

RUNS = [
    # One image: a loop-style file (every output element its own autograd graph) needs ~15 s per image here.
    Run(id="simplecnn.one_image", component="simplecnn", case="one_image", x_shape=(1, 3, 32, 32), dtype="float32",
        time_limit_s=90.0),
    Run(id="simplecnn.parameters", component="simplecnn", case="parameters", aspects=("api",),
        x_shape=(1, 3, 32, 32), dtype="float32", run_forward=False),
]


def forward_backward(params: dict[str, np.ndarray], x: np.ndarray, grad: np.ndarray | None, *,
                     relu3: bool = True, softmax: bool = False) -> dict[str, np.ndarray]:
    """Logits and (with grad) every gradient of the module's SimpleCNN, in float64, from the reference layers."""
    p = {name: upcast(value) for name, value in params.items()}
    h1, c1 = ref.conv2d_forward(upcast(x), p["conv1.weight"], p["conv1.bias"], stride=1, padding=1)
    r1 = np.maximum(h1, 0)
    m1, cp1 = ref.maxpool2d_forward(r1, kernel_size=2)
    h2, c2 = ref.conv2d_forward(m1, p["conv2.weight"], p["conv2.bias"], stride=1, padding=1)
    r2 = np.maximum(h2, 0)
    m2, cp2 = ref.maxpool2d_forward(r2, kernel_size=2)
    flat, cf = ref.flatten_forward(m2)
    z1 = flat @ p["fc1.weight"] + p["fc1.bias"]
    a1 = np.maximum(z1, 0) if relu3 else z1
    logits = a1 @ p["fc2.weight"] + p["fc2.bias"]
    if softmax:
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return {"out": shifted / shifted.sum(axis=1, keepdims=True)}
    result = {"out": logits}
    if grad is None:
        return result
    g = upcast(grad)
    result["grad/fc2.weight"], result["grad/fc2.bias"] = a1.T @ g, g.sum(axis=0)
    da1 = g @ p["fc2.weight"].T
    dz1 = da1 * (z1 > 0) if relu3 else da1
    result["grad/fc1.weight"], result["grad/fc1.bias"] = flat.T @ dz1, dz1.sum(axis=0)
    dm2 = ref.flatten_backward(dz1 @ p["fc1.weight"].T, cf)
    dh2 = ref.maxpool2d_backward(dm2, cp2) * (h2 > 0)
    dm1, result["grad/conv2.weight"], result["grad/conv2.bias"] = ref.conv2d_backward(dh2, c2)
    dh1 = ref.maxpool2d_backward(dm1, cp1) * (h1 > 0)
    result["dx"], result["grad/conv1.weight"], result["grad/conv1.bias"] = ref.conv2d_backward(dh1, c1)
    return result


def prepare(run: Run, rng: np.random.Generator) -> PreparedRun:
    x = make_input(rng, run.x_shape, run.dtype)
    params = {}
    for name, shape in PARAMETER_SHAPES.items():
        fan_in = int(np.prod(shape[1:])) if name.startswith("conv") else shape[0]
        scale = 1.0 / np.sqrt(fan_in) if name.endswith("weight") else 0.1
        params[name] = (rng.uniform(-1.0, 1.0, size=shape) * scale * 1.7).astype(run.dtype)
    grad = make_input(rng, (run.x_shape[0], 10), run.dtype)
    inputs = {"x": x, "grad": grad, **params}
    return PreparedRun(run, inputs, forward_backward(params, x, grad))


def variants(prepared: PreparedRun) -> list[Variant]:
    inputs = prepared.inputs
    params = {name: inputs[name] for name in PARAMETER_SHAPES}
    return [
        Variant("softmax_output", "forward returns softmax probabilities; SimpleCNN.forward returns the logits "
                "of fc2 (the loss applies softmax).", forward_backward(params, inputs["x"], None, softmax=True)),
        Variant("missing_relu3", "there is no ReLU between fc1 and fc2.",
                forward_backward(params, inputs["x"], inputs["grad"], relu3=False)),
    ]


def judge_api(prepared: PreparedRun, got: dict[str, np.ndarray], entry: dict) -> list[str]:
    """SimpleCNN() must create conv1, conv2, fc1, fc2 with the module's parameter shapes."""
    shapes = entry.get("param_shapes") or {}
    problems = []
    for name, shape in PARAMETER_SHAPES.items():
        have = shapes.get(name)
        if have is None or tuple(have) != shape:
            found = "nothing" if have is None else f"shape {tuple(have)}"
            problems.append(f"SimpleCNN().{name} should have shape {shape}; found {found}.")
    return problems
