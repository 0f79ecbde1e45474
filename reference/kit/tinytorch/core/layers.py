"""`Layer`, the base of every layer (alias `Module`), the dense `Linear` layer (y = x @ W + b, W of shape
(in, out)) and `Dropout`, as the course's module 03 names them."""

import numpy as np

from . import autograd
from .autograd import Function
from .tensor import Tensor, _new

XAVIER_SCALE_FACTOR = 1.0  # the course's constants: Xavier init scales by sqrt(1 / fan_in)
HE_SCALE_FACTOR = 2.0  # He init (for ReLU) by sqrt(2 / fan_in)
DROPOUT_MIN_PROB = 0.0
DROPOUT_MAX_PROB = 1.0


def named_parameters(obj, prefix=""):
    """(name, Tensor) for every tensor that requires grad reachable from `obj`'s attributes.

    Walks Modules, plain layer objects (anything with a `forward` method), lists, tuples and
    dicts, in attribute order, each tensor once; names are dotted paths such as `conv1.weight`.
    """
    seen = set()
    result = []
    _walk(obj, prefix, seen, result)
    return result


def _walk(obj, name, seen, result):
    if isinstance(obj, Tensor):
        if obj.requires_grad and obj.is_leaf and id(obj) not in seen:
            seen.add(id(obj))
            result.append((name, obj))
        return
    if id(obj) in seen:
        return
    if isinstance(obj, (list, tuple)):
        seen.add(id(obj))
        for i, item in enumerate(obj):
            _walk(item, f"{name}.{i}" if name else str(i), seen, result)
    elif isinstance(obj, dict):
        seen.add(id(obj))
        for key, item in obj.items():
            _walk(item, f"{name}.{key}" if name else str(key), seen, result)
    elif isinstance(obj, Module) or (callable(getattr(type(obj), "forward", None)) and hasattr(obj, "__dict__")):
        seen.add(id(obj))
        for key, item in vars(obj).items():
            _walk(item, f"{name}.{key}" if name else key, seen, result)


class Module:
    """Base class of layers: `layer(x)` calls `layer.forward(x)`; parameters are found by attribute walk."""

    training = True

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def named_parameters(self):
        """(dotted name, Tensor) for every parameter, e.g. ("fc1.weight", W)."""
        return named_parameters(self)

    def parameters(self):
        """Every tensor that requires grad held by this module or its sub-modules, each once."""
        return [p for _, p in named_parameters(self)]

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        for _, obj in _submodules(self):
            obj.training = mode
        return self

    def eval(self):
        return self.train(False)


def _submodules(module):
    stack, seen = [("", module)], set()
    while stack:
        name, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Module):
            yield name, obj
            stack.extend((f"{name}.{k}" if name else k, v) for k, v in vars(obj).items())
        elif isinstance(obj, (list, tuple)):
            stack.extend((f"{name}.{i}", v) for i, v in enumerate(obj))


class LinearFunction(Function):
    """Backward of y = x @ W + b for x (..., in), W (in, out), b (out,) or None."""

    def apply(self, grad_output):
        x, weight, bias = self.saved_tensors
        grad_2d = grad_output.reshape(-1, grad_output.shape[-1])
        grad_x = grad_output @ weight.data.T if x.requires_grad else None
        grad_weight = x.data.reshape(-1, x.data.shape[-1]).T @ grad_2d if weight.requires_grad else None
        grad_bias = grad_2d.sum(axis=0) if bias is not None and bias.requires_grad else None
        return grad_x, grad_weight, grad_bias


def linear(x, weight, bias=None):
    """y = x @ weight + bias as one recorded operation."""
    out = x.data @ weight.data
    if bias is not None:
        out += bias.data
    if autograd._grad_mode.enabled and (x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)):
        return _new(out, True, LinearFunction(x, weight, bias))
    return _new(out)


class Linear(Module):
    """Dense layer y = x @ W + b.

    Args:
        in_features: size of each input row.
        out_features: size of each output row.
        bias: whether to add a learnable bias.

    Weights are float32, uniform in +-1/sqrt(in_features) (PyTorch's default), drawn from
    NumPy's global random state, so `np.random.seed` makes them reproducible.
    """

    def __init__(self, in_features, out_features, bias=True):
        self.in_features = in_features
        self.out_features = out_features
        bound = 1.0 / np.sqrt(in_features)
        self.weight = Tensor(np.random.uniform(-bound, bound, (in_features, out_features)).astype(np.float32),
                             requires_grad=True)
        self.bias = (Tensor(np.random.uniform(-bound, bound, (out_features,)).astype(np.float32), requires_grad=True)
                     if bias else None)

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        return linear(x, self.weight, self.bias)

    def __repr__(self):
        return f"Linear(in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None})"


Layer = Module  # the course's name for the layer base class (course versions before 0.1 called it Module)


class Dense(Linear):
    """The dense layer under its name in course versions before 0.1: `Dense(input_size, output_size, use_bias=True)`
    (the same layer as Linear, whose argument names it also takes)."""

    def __init__(self, input_size=None, output_size=None, use_bias=True, *, in_features=None, out_features=None,
                 bias=None):
        super().__init__(in_features if in_features is not None else input_size,
                         out_features if out_features is not None else output_size,
                         use_bias if bias is None else bias)


class Dropout(Module):
    """Inverted dropout: zeroes elements with probability p while training, identity in eval().

    `forward(x, training=False)` (the course's call) or `layer.eval()` turns it off.
    """

    def __init__(self, p=0.5):
        if not DROPOUT_MIN_PROB <= p <= DROPOUT_MAX_PROB:
            raise ValueError(f"Dropout probability must be between {DROPOUT_MIN_PROB} and {DROPOUT_MAX_PROB}, got {p}")
        self.p = p

    def forward(self, x, training=None):
        training = self.training if training is None else training
        if not training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * x.dtype.type(0.0)
        keep = (np.random.random_sample(x.shape) >= self.p).astype(x.dtype) / x.dtype.type(1.0 - self.p)
        return x * keep

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Sequential(Module):
    """Applies its layers in order."""

    def __init__(self, *layers):
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, index):
        return self.layers[index]

    def __len__(self):
        return len(self.layers)
