"""The correctness catalogue: checks named `<component>.<aspect>.<case>`, built from harness runs.

A *run* is one thing the harness does in the sandbox: build one student layer, set its parameters, run forward
and `backward(G)`. A *check* is one scored judgement about a run (its forward output, its gradients, or an API
property). Forward and backward checks of a case share a run, so the student's code runs once per case.
Every input is generated here, on the trusted side, from the spec's seed; expected outputs never leave this
process. A run touches exactly one component of the student's file (simplecnn runs use all of them).

Which runs exist depends on the assignment (`CatalogueOptions`, from the spec): the SimpleCNN architecture, and
whether the flatten step is a class, a function, or not graded.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from reference.architectures import MODULE_TEXT, Architecture

COMPONENTS = ("conv2d", "maxpool2d", "avgpool2d", "flatten", "simplecnn")
CLASS_NAMES = {
    "conv2d": ("Conv2D", "Conv2d"),
    "maxpool2d": ("MaxPool2D", "MaxPool2d"),
    "avgpool2d": ("AvgPool2D", "AvgPool2d"),
    "flatten": ("Flatten",),
    "simplecnn": ("SimpleCNN",),
}
FLATTEN_FUNCTION_NAMES = ("flatten",)
FLATTEN_MODES = ("class", "function", "none")


@dataclass(frozen=True)
class CatalogueOptions:
    """What the assignment grades beyond the fixed layer checks.

    Fields:
        architecture: the SimpleCNN the simplecnn checks build and compare against.
        flatten: "class" (a Flatten class is graded), "function" (a module-level `flatten(x)` is graded) or
            "none" (no flatten checks; SimpleCNN may flatten however it likes).
    """

    architecture: Architecture = MODULE_TEXT
    flatten: str = "class"

    def names(self, component: str) -> tuple[str, ...]:
        """What the harness looks for in the student's file for `component`."""
        if component == "flatten" and self.flatten == "function":
            return FLATTEN_FUNCTION_NAMES
        return CLASS_NAMES[component]


DEFAULT_OPTIONS = CatalogueOptions()


@dataclass(frozen=True)
class Run:
    """One harness run.

    Fields:
        id: `<component>.<case>`, unique in the catalogue; the key of its arrays in the npz files.
        component: which class of spatial.py is exercised.
        case: the case name shared by the run's checks.
        aspects: the checks made from this run: ("forward", "backward") or ("api",).
        x_shape, dtype: the input (N, C, H, W) and its dtype ("float32" or "float64").
        init: keyword arguments given to the student's constructor.
        options: keyword arguments of the reference function (stride, padding, kernel_size).
        weight_shape: conv filters (F, C, KH, KW); None for layers without parameters.
        bias: whether a bias is set (conv2d); False sets `layer.bias = None`.
        input_kind: "normal" (Gaussian) or "ties" (small integers: many equal maxima in pooling windows).
        keep_input: hand back x after forward too (to check the input was not modified).
        run_forward: False for API runs that only construct the layer and read its parameter shapes.
        construct_of: for such a run, the id of an earlier run of the same component and constructor arguments
            whose construction the harness hands back for this one instead of building the layer again.
        time_limit_s: per phase (construct+forward, backward) inside the sandbox.
        call: "class" (construct the class, call forward) or "function" (call the module-level function on x).
        architecture: simplecnn runs: the network whose parameters are set and whose outputs are expected.
    """

    id: str
    component: str
    case: str
    aspects: tuple[str, ...] = ("forward", "backward")
    x_shape: tuple[int, ...] = ()
    dtype: str = "float64"
    init: Mapping[str, object] = field(default_factory=dict)
    options: Mapping[str, object] = field(default_factory=dict)
    weight_shape: tuple[int, ...] | None = None
    bias: bool = True
    input_kind: str = "normal"
    keep_input: bool = False
    run_forward: bool = True
    construct_of: str | None = None
    time_limit_s: float = 5.0
    call: str = "class"
    architecture: Architecture | None = None

    def describe(self) -> str:
        """What the run did, in the student's terms: `Conv2D(3, 4, kernel_size=3, stride=2) on x (2, 3, 7, 8) float64`."""
        if self.call == "function":
            return f"{FLATTEN_FUNCTION_NAMES[0]}(x) on x of shape {tuple(self.x_shape)} {self.dtype}"
        name = CLASS_NAMES[self.component][0]
        if self.component == "conv2d":
            args = [str(self.weight_shape[1]), str(self.weight_shape[0])]
            args += [f"{key}={value}" for key, value in self.init.items()
                     if key not in ("in_channels", "out_channels")]
        else:
            args = [f"{key}={value}" for key, value in self.init.items()]
        extra = "" if self.bias or self.component != "conv2d" else ", bias=None"
        return f"{name}({', '.join(args)}) on x of shape {tuple(self.x_shape)} {self.dtype}{extra}"


@dataclass(frozen=True)
class Check:
    """One scored judgement; `keys` are the outputs it compares ("out", "dx", "grad/weight", ...)."""

    name: str
    component: str
    aspect: str
    case: str
    run: Run
    keys: tuple[str, ...]


@dataclass(frozen=True)
class Variant:
    """A known mistake: the outputs a student's code would produce if it made it, and how to say so."""

    label: str
    explanation: str
    outputs: Mapping[str, np.ndarray]


@dataclass
class PreparedRun:
    """A run's inputs (sent to the sandbox) and the reference's outputs (kept here), both float64 except inputs;
    `tolerances` keeps grader.diagnosis.tolerance of each expected output once a comparison has needed it."""

    run: Run
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    tolerances: dict[str, object] = field(default_factory=dict, repr=False, compare=False)


def _component_modules():
    from grader.checks import conv2d, flatten, pooling, simplecnn

    return {"conv2d": conv2d, "maxpool2d": pooling, "avgpool2d": pooling, "flatten": flatten,
            "simplecnn": simplecnn}


def all_runs(options: CatalogueOptions = DEFAULT_OPTIONS) -> list[Run]:
    """Every run of the catalogue, cheap components first and SimpleCNN last (the largest arrays)."""
    modules = _component_modules()
    seen, runs = set(), []
    for component in COMPONENTS:
        module = modules[component]
        if id(module) in seen:
            continue
        seen.add(id(module))
        runs.extend(module.runs(options) if hasattr(module, "runs") else module.RUNS)
    return runs


def checks_of(run: Run) -> list[Check]:
    result = []
    for aspect in run.aspects:
        if aspect == "forward":
            keys = ("out",)
        elif aspect == "backward":
            keys = ("dx",) + tuple(f"grad/{name}" for name in parameter_names(run))
        else:
            keys = ("out", "x_after") if run.keep_input else ("out",) if run.run_forward else ()
        result.append(Check(f"{run.component}.{aspect}.{run.case}", run.component, aspect, run.case, run, keys))
    return result


def parameter_names(run: Run) -> list[str]:
    """Names of the parameters a run sets (and whose gradients backward checks compare)."""
    if run.component == "conv2d":
        return ["weight", "bias"] if run.bias else ["weight"]
    if run.component == "simplecnn":
        return list((run.architecture or MODULE_TEXT).parameter_shapes())
    return []


def run_seed(seed: int, run: Run) -> int:
    """A per-run seed, stable across Python processes (unlike hash())."""
    return (seed * 1_000_003 + zlib.crc32(run.id.encode())) % 2**32


def prepare(run: Run, seed: int) -> PreparedRun:
    """Generate the run's inputs from the seed and compute the reference outputs."""
    module = _component_modules()[run.component]
    rng = np.random.default_rng(run_seed(seed, run))
    return module.prepare(run, rng)


def variants(prepared: PreparedRun) -> list[Variant]:
    """Known mistakes for this run, for the diagnosis of a failing check."""
    return _component_modules()[prepared.run.component].variants(prepared)


def make_input(rng: np.random.Generator, shape, dtype: str, kind: str = "normal") -> np.ndarray:
    if kind == "ties":
        return rng.integers(-2, 3, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def upcast(array: np.ndarray | None) -> np.ndarray | None:
    return None if array is None else np.asarray(array, dtype=np.float64)

