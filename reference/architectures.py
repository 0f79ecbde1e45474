"""SimpleCNN architectures an assignment can grade against: the module text's, the current course's, or a layer list.

An architecture is an ordered list of layers (kind, name, keyword arguments) on (N, 3, 32, 32) images. Its
parameters, in `parameters()` order, are each weighted layer's weight then bias: conv weights (F, C, KH, KW),
linear weights (in_features, out_features) as in the course's Linear. The correctness stage matches a student's
`SimpleCNN().parameters()` against these shapes in this order (attribute names do not matter), and the CIFAR-10
stage trains and evaluates the same list.

An instructor's layer list is written as short strings, one per layer:

    layers = ["Conv2d(3, 16, 3, padding=1)", "ReLU", "MaxPool2d(2)", "Conv2d(16, 32, 3, padding=1)", "ReLU",
              "MaxPool2d(2)", "Flatten", "Linear(2048, 10)"]
"""

from __future__ import annotations

import re
from dataclasses import dataclass

INPUT_SHAPE = (3, 32, 32)
LAYER_KINDS = ("conv2d", "relu", "maxpool2d", "avgpool2d", "flatten", "linear")
WEIGHTED_KINDS = ("conv2d", "linear")
MAX_LAYERS = 32


class ArchitectureError(ValueError):
    """A layer list that cannot be a SimpleCNN; the message says which layer and why."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer: `kind` among LAYER_KINDS, a unique `name` (e.g. "conv1"), constructor keyword arguments."""

    kind: str
    name: str
    kwargs: tuple[tuple[str, int], ...] = ()

    @property
    def options(self) -> dict[str, int]:
        return dict(self.kwargs)

    def describe(self) -> str:
        """The layer as the student writes it: `Conv2d(3, 16, kernel_size=3, padding=1)`."""
        options = self.options
        if self.kind == "conv2d":
            rest = [f"{key}={value}" for key, value in options.items() if key not in ("in_channels", "out_channels")]
            return f"Conv2d({', '.join([str(options['in_channels']), str(options['out_channels'])] + rest)})"
        if self.kind == "linear":
            return f"Linear({options['in_features']}, {options['out_features']})"
        if self.kind in ("maxpool2d", "avgpool2d"):
            label = "MaxPool2d" if self.kind == "maxpool2d" else "AvgPool2d"
            return f"{label}({', '.join(f'{key}={value}' for key, value in options.items())})"
        return {"relu": "ReLU", "flatten": "flatten"}[self.kind]


@dataclass(frozen=True)
class Architecture:
    """A named layer list; `parameter_shapes()` gives its parameters in `parameters()` order."""

    name: str
    layers: tuple[LayerSpec, ...]
    title: str = ""

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            options = layer.options
            if layer.kind == "conv2d":
                kernel = options["kernel_size"]
                shapes[f"{layer.name}.weight"] = (options["out_channels"], options["in_channels"], kernel, kernel)
                shapes[f"{layer.name}.bias"] = (options["out_channels"],)
            elif layer.kind == "linear":
                shapes[f"{layer.name}.weight"] = (options["in_features"], options["out_features"])
                shapes[f"{layer.name}.bias"] = (options["out_features"],)
        return shapes

    def fan_in(self, layer_name: str) -> int:
        """Inputs feeding one output unit of a weighted layer (for PyTorch's default initialisation)."""
        weight = self.parameter_shapes()[f"{layer_name}.weight"]
        return weight[0] if len(weight) == 2 else weight[1] * weight[2] * weight[3]

    @property
    def num_classes(self) -> int:
        return self.layers[-1].options["out_features"]

    def as_recipe(self, flatten: str = "class") -> list[list]:
        """[kind, name, kwargs] triples for the training harness; `flatten` says what the flatten step is
        ("class": the student's Flatten, "function": the student's flatten(), "none": a plain reshape)."""
        flatten_kind = {"class": "flatten", "function": "flatten_function", "none": "reshape"}[flatten]
        return [[flatten_kind if layer.kind == "flatten" else layer.kind, layer.name, layer.options]
                for layer in self.training_order()]

    def training_order(self) -> tuple[LayerSpec, ...]:
        """The layers as training runs them: a ReLU followed by a max pool runs after the pool instead.

        ReLU and max are both exact and ReLU is monotonic, so max(relu(x)) == relu(max(x)) window by window
        (whatever the pool pads with) and the gradient reaches the same position: the network computes the same
        numbers, while the ReLU and its backward touch a quarter of the values (the full-size maps were about a
        tenth of a training step). The student's max pool then sees negative inputs, as it did in the
        correctness checks that gate training. Average pooling does not commute with ReLU and keeps its place.
        """
        layers = list(self.layers)
        for index in range(len(layers) - 1):
            if layers[index].kind == "relu" and layers[index + 1].kind == "maxpool2d":
                layers[index], layers[index + 1] = layers[index + 1], layers[index]
        return tuple(layers)

    def describe(self) -> str:
        return " -> ".join(layer.describe() for layer in self.layers)


def _layer(kind: str, name: str, **kwargs: int) -> LayerSpec:
    return LayerSpec(kind, name, tuple(kwargs.items()))


MODULE_TEXT = Architecture("module_text", (
    _layer("conv2d", "conv1", in_channels=3, out_channels=32, kernel_size=3, padding=1),
    _layer("relu", "relu1"),
    _layer("maxpool2d", "pool1", kernel_size=2),
    _layer("conv2d", "conv2", in_channels=32, out_channels=64, kernel_size=3, padding=1),
    _layer("relu", "relu2"),
    _layer("maxpool2d", "pool2", kernel_size=2),
    _layer("flatten", "flatten"),
    _layer("linear", "fc1", in_features=4096, out_features=128),
    _layer("relu", "relu3"),
    _layer("linear", "fc2", in_features=128, out_features=10),
), title="the module text's SimpleCNN (32 and 64 filters, fc1 4096->128, fc2 128->10)")

CURRENT_COURSE = Architecture("current_course", (
    _layer("conv2d", "conv1", in_channels=3, out_channels=16, kernel_size=3, padding=1),
    _layer("relu", "relu1"),
    _layer("maxpool2d", "pool1", kernel_size=2),
    _layer("conv2d", "conv2", in_channels=16, out_channels=32, kernel_size=3, padding=1),
    _layer("relu", "relu2"),
    _layer("maxpool2d", "pool2", kernel_size=2),
    _layer("flatten", "flatten"),
    _layer("linear", "fc", in_features=2048, out_features=10),
), title="the current course's SimpleCNN (16 and 32 filters, one Linear 2048->10)")

BUILT_IN = {architecture.name: architecture for architecture in (MODULE_TEXT, CURRENT_COURSE)}

_LAYER_PATTERN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*$")
_ALIASES = {"conv2d": "conv2d", "relu": "relu", "maxpool2d": "maxpool2d", "avgpool2d": "avgpool2d",
            "flatten": "flatten", "linear": "linear", "dense": "linear"}
_POSITIONAL = {"conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding"),
               "maxpool2d": ("kernel_size", "stride"), "avgpool2d": ("kernel_size", "stride"),
               "linear": ("in_features", "out_features"), "relu": (), "flatten": ()}
_REQUIRED = {"conv2d": ("in_channels", "out_channels", "kernel_size"), "maxpool2d": ("kernel_size",),
             "avgpool2d": ("kernel_size",), "linear": ("in_features", "out_features"), "relu": (), "flatten": ()}
_NAME_PREFIX = {"conv2d": "conv", "relu": "relu", "maxpool2d": "pool", "avgpool2d": "pool", "flatten": "flatten",
                "linear": "fc"}


def parse_layer(text: str) -> tuple[str, dict[str, int]]:
    """("conv2d", {"in_channels": 3, ...}) from one layer string such as "Conv2d(3, 16, 3, padding=1)"."""
    match = _LAYER_PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ArchitectureError(f"cannot read layer {text!r}; write e.g. 'Conv2d(3, 16, 3, padding=1)' or 'ReLU'")
    kind = _ALIASES.get(match.group(1).lower())
    if kind is None:
        raise ArchitectureError(f"unknown layer {match.group(1)!r} in {text!r}; known: Conv2d, ReLU, MaxPool2d, "
                                "AvgPool2d, Flatten, Linear")
    kwargs: dict[str, int] = {}
    arguments = [part.strip() for part in (match.group(2) or "").split(",") if part.strip()]
    positional = _POSITIONAL[kind]
    keyword_seen = False
    for index, argument in enumerate(arguments):
        key, equals, value = argument.partition("=")
        keyword_seen = keyword_seen or bool(equals)
        if not equals:
            if index >= len(positional) or keyword_seen:
                raise ArchitectureError(f"too many or misplaced positional arguments in {text!r}")
            key, value = positional[index], argument
        key = key.strip()
        if key in kwargs:
            raise ArchitectureError(f"{key} is given twice in {text!r}")
        if key not in positional:
            raise ArchitectureError(f"{match.group(1)} has no argument {key!r} (in {text!r})")
        try:
            number = int(value.strip())
        except ValueError:
            raise ArchitectureError(f"{key} must be a whole number in {text!r}") from None
        if number < (0 if key == "padding" else 1):
            raise ArchitectureError(f"{key} must be {'>= 0' if key == 'padding' else 'positive'} in {text!r}")
        kwargs[key] = number
    missing = [key for key in _REQUIRED[kind] if key not in kwargs]
    if missing:
        raise ArchitectureError(f"{text!r} needs {', '.join(missing)}")
    return kind, kwargs


def from_layer_list(texts, name: str = "custom") -> Architecture:
    """Build and check an Architecture from the instructor's layer strings."""
    if not isinstance(texts, (list, tuple)) or not texts or len(texts) > MAX_LAYERS:
        raise ArchitectureError(f"layers must be a list of 1 to {MAX_LAYERS} layer strings")
    counts: dict[str, int] = {}
    layers = []
    for text in texts:
        kind, kwargs = parse_layer(text)
        counts[kind] = counts.get(kind, 0) + 1
        layers.append(LayerSpec(kind, f"{_NAME_PREFIX[kind]}{counts[kind]}", tuple(kwargs.items())))
    if counts.get("flatten") == 1 and counts.get("linear", 0) == 1:
        layers = [LayerSpec(layer.kind, "fc", layer.kwargs) if layer.kind == "linear" else layer for layer in layers]
    architecture = Architecture(name, tuple(layers), title="the assignment's SimpleCNN")
    check(architecture)
    return architecture


def output_shape(layer: LayerSpec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of one sample after `layer`, given the sample's shape before it (no batch axis)."""
    options = layer.options
    if layer.kind == "conv2d":
        if len(shape) != 3 or shape[0] != options["in_channels"]:
            raise ArchitectureError(f"{layer.describe()} gets input of shape {shape}, needs "
                                    f"({options['in_channels']}, H, W)")
        kernel, stride, padding = options["kernel_size"], options.get("stride", 1), options.get("padding", 0)
        size = [(n + 2 * padding - kernel) // stride + 1 for n in shape[1:]]
        if min(size) < 1:
            raise ArchitectureError(f"{layer.describe()} on input {shape} leaves no output positions")
        return (options["out_channels"], *size)
    if layer.kind in ("maxpool2d", "avgpool2d"):
        if len(shape) != 3:
            raise ArchitectureError(f"{layer.describe()} needs a (C, H, W) input, gets {shape}")
        kernel = options["kernel_size"]
        stride = options.get("stride", kernel)
        size = [(n - kernel) // stride + 1 for n in shape[1:]]
        if min(size) < 1:
            raise ArchitectureError(f"{layer.describe()} on input {shape} leaves no output positions")
        return (shape[0], *size)
    if layer.kind == "flatten":
        total = 1
        for n in shape:
            total *= n
        return (total,)
    if layer.kind == "linear":
        if shape != (options["in_features"],):
            raise ArchitectureError(f"{layer.describe()} gets input of shape {shape}: in_features must be "
                                    f"{shape[0] if len(shape) == 1 else 'a flattened size (add Flatten first)'}")
        return (options["out_features"],)
    return shape


def check(architecture: Architecture) -> None:
    """Raise ArchitectureError unless the layers chain on (3, 32, 32) images and end in a Linear layer."""
    shape = INPUT_SHAPE
    for layer in architecture.layers:
        if layer.kind not in LAYER_KINDS:
            raise ArchitectureError(f"unknown layer kind {layer.kind!r}")
        shape = output_shape(layer, shape)
    if architecture.layers[-1].kind != "linear":
        raise ArchitectureError("the last layer must be a Linear layer giving the class scores")
    if sum(layer.kind == "flatten" for layer in architecture.layers) != 1:
        raise ArchitectureError("the layer list needs exactly one Flatten between the image and the Linear layers")


def resolve(name: str | None = None, layers=None) -> Architecture:
    """The built-in architecture `name` (default: the module text's), or the one `layers` describes."""
    if layers is not None:
        return from_layer_list(layers, name or "custom")
    name = name or "module_text"
    if name not in BUILT_IN:
        raise ArchitectureError(f"unknown architecture {name!r}; built in: {', '.join(BUILT_IN)} "
                                "(or give `layers = [...]`)")
    return BUILT_IN[name]
