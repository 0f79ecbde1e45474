"""Autograd: the `Function` base class, the grad-mode switch and the backward engine.

Writing your own operation
--------------------------
An operation computes its output with NumPy, wraps it in a `Tensor`, and attaches a
`Function` that knows how to turn the output's gradient into one gradient per input::

    import numpy as np
    from tinytorch.core.tensor import Tensor
    from tinytorch.core.autograd import Function

    class ScaleAndShift(Function):
        # y = x * w + b, for x (N, D), w (D,), b (D,)
        def __init__(self, x, w, b):
            super().__init__(x, w, b)        # keeps them in self.saved_tensors, in this order

        def apply(self, grad_output):        # grad_output: ndarray shaped like y
            x, w, b = self.saved_tensors
            return (grad_output * w.data,                 # gradient for x
                    (grad_output * x.data).sum(axis=0),   # gradient for w
                    grad_output.sum(axis=0))              # gradient for b

    def scale_and_shift(x, w, b):
        output = Tensor(x.data * w.data + b.data,
                        requires_grad=any(t.requires_grad for t in (x, w, b)))
        output._grad_fn = ScaleAndShift(x, w, b)
        return output

`apply` returns one gradient (an ndarray, or None for "no gradient") per saved tensor, in the
order they were given to `Function.__init__`. Returned gradients are summed over broadcast
dimensions and cast to the input's dtype by the engine, so a bias gradient of shape (1, D) for a
(D,) bias is accepted. `apply` must not modify `grad_output` in place.

`Tensor.backward()` visits every operation once, in reverse topological order, without recursion,
so graphs with hundreds of thousands of nodes (loop-style layers) are fine.
"""

import gc
import threading

import numpy as np
from numpy import ndarray


class _GradMode(threading.local):
    """Whether operations record the graph, per thread: `no_grad` in one thread leaves the others recording."""

    enabled = True


_grad_mode = _GradMode()
# Backward passes running now (on any thread): the cyclic collector is off while there is at least one.
_backward_lock = threading.Lock()
_backward_depth = 0
_collector_was_enabled = False


class _TensorBase:
    """Marker base class of `Tensor`, so this module can recognise tensors without importing them."""

    __slots__ = ()


def enable_autograd(quiet=True):
    """The course's switch that turns autograd on (module 05); here it is always on, so calling it changes nothing."""
    return None


def is_grad_enabled():
    """Whether new operations currently record the graph for backward."""
    return _grad_mode.enabled


class no_grad:
    """Context manager (and decorator) that stops operations from recording the graph, e.g. for evaluation."""

    def __enter__(self):
        self._previous = _grad_mode.enabled
        _grad_mode.enabled = False
        return self

    def __exit__(self, *exc_info):
        _grad_mode.enabled = self._previous
        return False

    def __call__(self, function):
        def wrapper(*args, **kwargs):
            with no_grad():
                return function(*args, **kwargs)

        wrapper.__name__ = getattr(function, "__name__", "wrapper")
        wrapper.__doc__ = getattr(function, "__doc__", None)
        return wrapper


class Function:
    """One recorded operation: keeps its inputs in `saved_tensors`; `apply` maps the output's gradient to theirs.

    Args:
        *tensors: the operation's inputs (Tensors; other values are kept but receive no gradient).
    """

    def __init__(self, *tensors):
        self.saved_tensors = tensors
        # The producer of each input *at the time it was used*: later in-place writes to an input
        # (Tensor.__setitem__) create a new producer and must not change what this operation saw.
        producers = []
        for t in tensors:
            if isinstance(t, _TensorBase):
                producers.append(t._grad_fn)
                t._read = True
            else:
                producers.append(None)
        self._input_fns = producers

    def apply(self, grad_output):
        """Return one gradient (ndarray or None) per saved tensor, given the gradient of the output."""
        raise NotImplementedError(f"{type(self).__name__} must implement apply(grad_output)")

    @property
    def next_functions(self):
        """The Functions that produced the saved inputs (the course's name for the graph's edges)."""
        assigned = self.__dict__.get("_next_functions")
        if assigned is not None:
            return assigned
        return [function for function in getattr(self, "_input_fns", ()) if function is not None]

    @next_functions.setter
    def next_functions(self, value):
        self.__dict__["_next_functions"] = value

    def __repr__(self):
        return f"<{type(self).__name__}>"


def _edges(function):
    """(saved inputs, their producer Functions or None) of `function`, two sequences of equal length."""
    saved = function.saved_tensors
    if not isinstance(saved, (tuple, list)):
        saved = (saved,)
    producers = getattr(function, "_input_fns", None)
    if producers is None or len(producers) != len(saved):
        # A Function subclass that set saved_tensors itself without calling Function.__init__.
        producers = [getattr(t, "_grad_fn", None) if isinstance(t, _TensorBase) else None for t in saved]
    return saved, producers


def _as_gradient_tuple(result, count):
    if isinstance(result, (tuple, list)):
        return result
    if count == 1 or result is None:
        return (result,)
    raise TypeError(f"apply() returned one gradient but the Function has {count} saved tensors; "
                    "return a tuple with one gradient (or None) per saved tensor")


def fit_gradient(gradient, tensor):
    """Return `gradient` as an ndarray with `tensor`'s shape and dtype (summing over broadcast dimensions).

    Raises:
        ValueError: the gradient cannot be brought to the tensor's shape.
    """
    if isinstance(gradient, _TensorBase):
        gradient = gradient.data
    data = tensor.data
    if type(gradient) is not np.ndarray:
        gradient = np.asarray(gradient)
    shape = data.shape
    if gradient.shape != shape:
        gradient = _reduce_to_shape(gradient, shape)
    if gradient.dtype != data.dtype and data.dtype.kind == "f":
        gradient = gradient.astype(data.dtype)
    return gradient


def _reduce_to_shape(gradient, shape):
    extra = gradient.ndim - len(shape)
    if extra >= 0 and all(g == s or s == 1 for g, s in zip(gradient.shape[extra:], shape)):
        if extra:
            gradient = gradient.sum(axis=tuple(range(extra)))
        axes = tuple(i for i, (g, s) in enumerate(zip(gradient.shape, shape)) if s == 1 and g != 1)
        if axes:
            gradient = gradient.sum(axis=axes, keepdims=True)
        return gradient.reshape(shape)
    if gradient.size == int(np.prod(shape)):
        return gradient.reshape(shape)
    raise ValueError(f"a gradient of shape {gradient.shape} was returned for a tensor of shape {shape}")


def run_backward(root, gradient):
    """Propagate `gradient` (ndarray shaped like `root`) to every leaf tensor that requires grad."""
    root_fn = root._grad_fn
    if root_fn is None:
        if root.requires_grad:
            _store_leaf_gradient(root, fit_gradient(gradient, root))
        return
    # The graph has no reference cycles, so the cyclic collector would only rescan it again and
    # again while backward allocates (a third of the time on loop-style graphs).
    _collector_off()
    try:
        _run_backward(root_fn, gradient)
    finally:
        _collector_restore()


def _collector_off():
    """Switch the cyclic collector off for a backward pass; passes on several threads share one switch."""
    global _backward_depth, _collector_was_enabled
    with _backward_lock:
        if _backward_depth == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _backward_depth += 1


def _collector_restore():
    """Put the collector back as it was once the last running backward pass ends."""
    global _backward_depth
    with _backward_lock:
        _backward_depth -= 1
        if _backward_depth == 0 and _collector_was_enabled:
            gc.enable()


def _run_backward(root_fn, gradient):
    """Run every Function under `root_fn` once, in reverse topological order, and store the leaves' gradients."""
    edges_of, pending_consumers = _count_consumers(root_fn)

    from .tensor import GetItemBackward  # local: tensor.py imports this module

    # Pass 2: run Functions in reverse topological order. entries maps id(Function) (or id(leaf
    # tensor)) to [summed gradient, whether that array is ours to add into, the leaf or None].
    entries = {id(root_fn): [gradient, False, None]}
    ready = [root_fn]
    tensor_base = _TensorBase
    while ready:
        function = ready.pop()
        saved, producers = edges_of[id(function)]
        entry = entries.pop(id(function), None)
        if entry is not None:
            grad_output = entry[0]
            if function.__class__ is GetItemBackward:
                source, producer = saved[0], producers[0]
                if source.requires_grad:
                    key = id(producer) if producer is not None else id(source)
                    target = entries.get(key)
                    if target is None or not target[1]:
                        buffer = np.zeros(source.data.shape, dtype=source.data.dtype)
                        if target is not None:
                            buffer += target[0]
                        target = [buffer, True, None if producer is not None else source]
                        entries[key] = target
                    function.accumulate(target[0], grad_output)
            else:
                gradients = _as_gradient_tuple(function.apply(grad_output), len(saved))
                for tensor, producer, grad in zip(saved, producers, gradients):
                    if grad is None or not isinstance(tensor, tensor_base):
                        continue
                    if producer is None and not (tensor._requires_grad or tensor._grad_fn is not None):
                        continue
                    data = tensor.data
                    if not (type(grad) is ndarray and grad.shape == data.shape and grad.dtype == data.dtype):
                        grad = fit_gradient(grad, tensor)
                    key = id(producer) if producer is not None else id(tensor)
                    target = entries.get(key)
                    if target is None:
                        entries[key] = [grad, False, None if producer is not None else tensor]
                    elif target[1]:
                        target[0] += grad
                    else:
                        target[0] = target[0] + grad
                        target[1] = True
        for producer in producers:
            if producer is not None:
                key = id(producer)
                count = pending_consumers[key] - 1
                pending_consumers[key] = count
                if count == 0:
                    ready.append(producer)

    _store_leaf_gradients(entries)


def _count_consumers(root_fn):
    """Pass 1 of backward: (edges of every Function reachable from `root_fn`, its count of consumers).

    The counts let a Function run only once all gradients flowing into its output have been summed.
    """
    edges_of = {id(root_fn): None}
    pending_consumers = {}
    stack = [root_fn]
    while stack:
        function = stack.pop()
        edges = _edges(function)
        edges_of[id(function)] = edges
        for producer in edges[1]:
            if producer is None:
                continue
            key = id(producer)
            count = pending_consumers.get(key)
            if count is None:
                pending_consumers[key] = 1
                if key not in edges_of:
                    edges_of[key] = None
                    stack.append(producer)
            else:
                pending_consumers[key] = count + 1
    return edges_of, pending_consumers


def _store_leaf_gradients(entries):
    """Add each summed leaf gradient in `entries` (values [gradient, owned, leaf or None]) to its leaf's .grad."""
    for gradient_array, _, leaf in entries.values():
        if leaf is not None:
            _store_leaf_gradient(leaf, gradient_array)


def _store_leaf_gradient(leaf, gradient):
    # Never modify an existing .grad in place: it may be an array the caller also holds.
    leaf.grad = gradient if leaf.grad is None else leaf.grad + gradient


# The course's named backward functions (ReLUBackward(x), SigmoidBackward(x, out), ...) live in their own
# module; imported last because they subclass Function.
from .backward_functions import *  # noqa: E402,F401,F403
from .backward_functions import __all__ as _backward_names  # noqa: E402

__all__ = ["Function", "enable_autograd", "no_grad", "is_grad_enabled", *_backward_names]
