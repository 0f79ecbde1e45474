"""SimpleCNN runs: the assignment's network built from the student's classes, with parameters set by the grader.

The network is the spec's architecture (reference/architectures.py): the module text's by default, the current
course's, or an instructor's layer list. The student's `SimpleCNN()` is matched to it by `parameters()` order
and shapes, never by attribute names; the grader overwrites those parameters' values and compares the logits
and every gradient with the reference network's.
"""

from __future__ import annotations

import numpy as np

from grader.checks import CatalogueOptions, PreparedRun, Run, Variant, make_input, upcast
from reference import network
from reference.architectures import BUILT_IN, MODULE_TEXT, Architecture

# The module text's parameters, by name (kept for readers of older results; the runs use the architecture).
PARAMETER_SHAPES = MODULE_TEXT.parameter_shapes()


def runs(options: CatalogueOptions) -> list[Run]:
    architecture = options.architecture
    # The parameters check reads the shapes the one_image run records before its forward pass: the harness does
    # not build SimpleCNN a second time (~5 ms of every job's CPU, mostly the random init of fc1's weight).
    return [
        # One image: a loop-style file (every output element its own autograd graph) needs ~15 s per image here.
        Run(id="simplecnn.one_image", component="simplecnn", case="one_image", x_shape=(1, 3, 32, 32),
            dtype="float32", time_limit_s=90.0, architecture=architecture),
        Run(id="simplecnn.parameters", component="simplecnn", case="parameters", aspects=("api",),
            x_shape=(1, 3, 32, 32), dtype="float32", run_forward=False, construct_of="simplecnn.one_image",
            architecture=architecture),
    ]


RUNS = runs(CatalogueOptions())


def _architecture(run: Run) -> Architecture:
    return run.architecture or MODULE_TEXT


def forward_backward(params: dict[str, np.ndarray], x: np.ndarray, grad: np.ndarray | None, *,
                     architecture: Architecture = MODULE_TEXT, relu3: bool = True,
                     softmax: bool = False) -> dict[str, np.ndarray]:
    """Logits and (with grad) every gradient of the network, in float64, from the reference layers.

    `relu3=False` leaves out the ReLU before the last Linear layer and `softmax=True` returns probabilities:
    the outputs of two known mistakes.
    """
    p = {name: upcast(value) for name, value in params.items()}
    out, caches = network.forward(architecture, p, upcast(x), softmax=softmax, skip_last_relu=not relu3)
    result = {"out": out}
    if grad is None or softmax:
        return result
    dx, grads = network.backward(architecture, p, upcast(grad), caches)
    result["dx"] = dx
    result.update({f"grad/{name}": value for name, value in grads.items()})
    return result


def prepare(run: Run, rng: np.random.Generator) -> PreparedRun:
    architecture = _architecture(run)
    x = make_input(rng, run.x_shape, run.dtype)
    params = {}
    for name, shape in architecture.parameter_shapes().items():
        fan_in = architecture.fan_in(name.split(".")[0])
        scale = 1.0 / np.sqrt(fan_in) if name.endswith("weight") else 0.1
        params[name] = (rng.uniform(-1.0, 1.0, size=shape) * scale * 1.7).astype(run.dtype)
    grad = make_input(rng, (run.x_shape[0], architecture.num_classes), run.dtype)
    inputs = {"x": x, "grad": grad, **params}
    return PreparedRun(run, inputs, forward_backward(params, x, grad, architecture=architecture))


def variants(prepared: PreparedRun) -> list[Variant]:
    architecture = _architecture(prepared.run)
    inputs = prepared.inputs
    params = {name: inputs[name] for name in architecture.parameter_shapes()}
    last = architecture.layers[-1].name
    found = [Variant("softmax_output", f"forward returns softmax probabilities; SimpleCNN.forward returns the logits "
                     f"of its last Linear layer ({last}); the loss applies softmax.",
                     forward_backward(params, inputs["x"], None, architecture=architecture, softmax=True))]
    if len(architecture.layers) > 1 and architecture.layers[-2].kind == "relu":
        before = [layer.name for layer in architecture.layers[:-2] if layer.kind in ("linear", "conv2d")]
        between = f"between {before[-1]} and {last}" if before else f"right before {last}"
        found.append(Variant("missing_relu3", f"there is no ReLU {between}.",
                             forward_backward(params, inputs["x"], inputs["grad"], architecture=architecture,
                                              relu3=False)))
    return found


def _shapes_text(shapes) -> str:
    return "[" + ", ".join("?" if shape is None else str(tuple(shape)) for shape in shapes) + "]"


def _is_subsequence(part: list, whole: list) -> bool:
    remaining = iter(whole)
    return all(any(item == other for other in remaining) for item in part)


def parameter_problems(architecture: Architecture, listed, walked=None) -> list[str]:
    """What is wrong with the parameters a student's SimpleCNN() has, compared with the architecture's list."""
    expected = architecture.parameter_shapes()
    wanted = [list(shape) for shape in expected.values()]
    if listed == wanted:
        return []
    in_order = ", ".join(f"{name} {shape}" for name, shape in expected.items())
    lines = []
    if listed is None:
        if walked == wanted:
            return []  # no parameters() method: the layers it holds, in definition order, are the parameters
        lines.append(f"SimpleCNN has no parameters() method, and the layers it holds do not have the assignment's "
                     f"parameters in order: {in_order}.")
    else:
        lines.append(f"SimpleCNN().parameters() returns {len(listed)} tensors with shapes {_shapes_text(listed)}; "
                     f"expected {len(wanted)} in this order: {in_order}.")
        if len(listed) < len(wanted) and _is_subsequence(listed, wanted):
            missing = [name for name, shape in expected.items() if list(shape) not in listed]
            layers = [layer.describe() for layer in architecture.layers
                      if any(name.startswith(layer.name + ".") for name in missing)]
            if walked is not None and len(walked) <= len(listed):
                hint = f"your SimpleCNN has no {' or '.join(layers)} layer: add it"
            else:
                hint = "does parameters() include every layer?"
            lines.append(f"Missing: {', '.join(missing)} ({hint}).")
    if walked is not None and walked not in (wanted, listed):
        lines.append(f"The tensors its attributes hold, in definition order, have shapes {_shapes_text(walked)}.")
    for other in BUILT_IN.values():
        shapes = [list(shape) for shape in other.parameter_shapes().values()]
        if other.name != architecture.name and shapes in (listed, walked):
            lines.append(f"Your SimpleCNN is {other.title}; this assignment grades {architecture.title}.")
    lines.append(f"(The assignment's network is {architecture.describe()}; parameters are matched by order and "
                 "shape, attribute names do not matter.)")
    return lines


def judge_api(prepared: PreparedRun, got: dict[str, np.ndarray], entry: dict) -> list[str]:
    """SimpleCNN().parameters() must list the architecture's parameters in order, with their shapes."""
    return parameter_problems(_architecture(prepared.run), entry.get("param_list"), entry.get("param_walk"))
