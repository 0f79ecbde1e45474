"""The correct fixture submissions agree with PyTorch CPU, forward and backward, on a few shapes.

Independent of reference/ (the grader's NumPy reference): the fixtures are what the reference is
later checked against, so here they are compared with torch directly.
"""

import numpy as np
import pytest
import torch

from tests.reference.kit.kit_files import load_submission
from tinytorch.core.tensor import Tensor

VARIANTS = ["good_vectorized", "good_loop", "good_lowercase"]
LOOP_FRIENDLY_CONV_CASES = [
    # (N, C, H, W, F, kernel, stride, padding, bias)
    (2, 3, 7, 6, 4, 3, 1, 1, True),
    (1, 2, 6, 7, 3, (2, 3), (2, 1), (1, 0), False),
    (2, 1, 9, 8, 2, 5, 3, 2, True),
    (1, 3, 4, 5, 2, 1, 2, 0, True),
]
POOL_CASES = [
    # (N, C, H, W, kernel, stride)
    (2, 3, 8, 8, 2, None),
    (2, 2, 7, 9, 3, 2),
    (1, 2, 6, 5, 2, 1),
    (1, 1, 7, 7, (2, 3), (1, 2)),
]


def classes(module):
    def pick(*names):
        for name in names:
            if hasattr(module, name):
                return getattr(module, name)
        raise AssertionError(f"none of {names} in {module.__name__}")

    return pick("Conv2D", "Conv2d"), pick("MaxPool2D", "MaxPool2d"), pick("AvgPool2D", "AvgPool2d"), module.Flatten


def tolerance(dtype):
    return dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-11)


def conv_kernel(kernel):
    return kernel if isinstance(kernel, tuple) else (kernel, kernel)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LOOP_FRIENDLY_CONV_CASES, ids=str)
def test_conv2d_matches_torch(variant, dtype, case, rng):
    conv_class = classes(load_submission(variant))[0]
    n, c, h, w, f, kernel, stride, padding, bias = case
    layer = conv_class(c, f, kernel_size=kernel, stride=stride, padding=padding, bias=bias)
    assert layer.weight.shape == (f, c, *conv_kernel(kernel)) and layer.weight.requires_grad
    xw = rng.standard_normal((n, c, h, w)).astype(dtype)
    ww = rng.standard_normal(layer.weight.shape).astype(dtype)
    bw = rng.standard_normal(f).astype(dtype)
    x = Tensor(xw, requires_grad=True)
    layer.weight = Tensor(ww, requires_grad=True)
    layer.bias = Tensor(bw, requires_grad=True) if bias else None
    out = layer(x)
    upstream = rng.standard_normal(out.shape).astype(dtype)
    out.backward(upstream)

    tx, tw = torch.tensor(xw, requires_grad=True), torch.tensor(ww, requires_grad=True)
    tb = torch.tensor(bw, requires_grad=True) if bias else None
    expected = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding)
    expected.backward(torch.tensor(upstream))
    tol = tolerance(dtype)
    assert out.dtype == dtype
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **tol)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy(), **tol)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, tb.grad.numpy(), **tol)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pools_match_torch_including_ties(variant, kind, case, rng):
    _, max_class, avg_class, _ = classes(load_submission(variant))
    n, c, h, w, kernel, stride = case
    pool = (max_class if kind == "max" else avg_class)(kernel_size=kernel, stride=stride)
    xw = rng.integers(0, 3, (n, c, h, w)).astype(np.float64)  # many ties: gradient goes to the first maximum
    x = Tensor(xw, requires_grad=True)
    out = pool(x)
    upstream = rng.standard_normal(out.shape)
    out.backward(upstream)
    tx = torch.tensor(xw, requires_grad=True)
    function = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d
    expected = function(tx, kernel, stride)
    expected.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_pool_stride_defaults_to_kernel_size():
    for variant in VARIANTS:
        _, max_class, avg_class, _ = classes(load_submission(variant))
        x = Tensor(np.arange(36.0).reshape(1, 1, 6, 6))
        assert max_class(kernel_size=3)(x).shape == (1, 1, 2, 2)
        assert avg_class(kernel_size=2)(x).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("variant", VARIANTS)
def test_flatten_is_row_major(variant, rng):
    flatten = classes(load_submission(variant))[3]()
    xw = rng.standard_normal((2, 3, 4, 5))
    x = Tensor(xw, requires_grad=True)
    out = flatten(x)
    np.testing.assert_array_equal(out.data, xw.reshape(2, 60))
    upstream = rng.standard_normal((2, 60))
    out.backward(upstream)
    np.testing.assert_array_equal(x.grad, upstream.reshape(xw.shape))


def torch_simple_cnn(params):
    from torch import nn

    model = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4096, 128), nn.ReLU(), nn.Linear(128, 10)).double()
    with torch.no_grad():
        for index, name in ((0, "conv1"), (3, "conv2")):
            model[index].weight.copy_(torch.from_numpy(params[f"{name}.weight"]))
            model[index].bias.copy_(torch.from_numpy(params[f"{name}.bias"]))
        for index, name in ((7, "fc1"), (9, "fc2")):
            model[index].weight.copy_(torch.from_numpy(params[f"{name}.weight"].T.copy()))
            model[index].bias.copy_(torch.from_numpy(params[f"{name}.bias"]))
    return model


@pytest.mark.parametrize("variant", ["good_vectorized", "good_lowercase"])
def test_simple_cnn_step_matches_torch(variant, rng):
    from tinytorch.core.losses import CrossEntropyLoss

    module = load_submission(variant)
    net = module.SimpleCNN()
    shapes = {"conv1.weight": (32, 3, 3, 3), "conv1.bias": (32,), "conv2.weight": (64, 32, 3, 3), "conv2.bias": (64,),
              "fc1.weight": (4096, 128), "fc1.bias": (128,), "fc2.weight": (128, 10), "fc2.bias": (10,)}
    params = {name: rng.standard_normal(shape) * 0.05 for name, shape in shapes.items()}
    for name, value in params.items():
        layer, attribute = name.split(".")
        setattr(getattr(net, layer), attribute, Tensor(value.copy(), requires_grad=True))
    x = rng.standard_normal((3, 3, 32, 32))
    labels = np.array([1, 7, 3])
    loss = CrossEntropyLoss()(net.forward(Tensor(x)), labels)
    loss.backward()

    model = torch_simple_cnn(params)
    expected = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(labels))
    expected.backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-10)
    torch_grads = {"conv1.weight": model[0].weight.grad.numpy(), "conv2.weight": model[3].weight.grad.numpy(),
                   "conv2.bias": model[3].bias.grad.numpy(), "fc1.weight": model[7].weight.grad.numpy().T,
                   "fc2.bias": model[9].bias.grad.numpy()}
    for name, expected_grad in torch_grads.items():
        layer, attribute = name.split(".")
        np.testing.assert_allclose(getattr(getattr(net, layer), attribute).grad, expected_grad, rtol=1e-8, atol=1e-11,
                                   err_msg=name)


@pytest.mark.slow
def test_loop_style_simple_cnn_forward_matches_vectorized(rng):
    """The verbatim loop style also builds the whole network (one image; slow by design)."""
    loop, fast = load_submission("good_loop").SimpleCNN(), load_submission("good_vectorized").SimpleCNN()
    for name in ("conv1", "conv2", "fc1", "fc2"):
        for attribute in ("weight", "bias"):
            value = getattr(getattr(fast, name), attribute).data.astype(np.float64)
            setattr(getattr(loop, name), attribute, Tensor(value.copy(), requires_grad=True))
            setattr(getattr(fast, name), attribute, Tensor(value.copy(), requires_grad=True))
    x = rng.standard_normal((1, 3, 32, 32))
    out_loop, out_fast = loop.forward(Tensor(x)), fast.forward(Tensor(x))
    np.testing.assert_allclose(out_loop.data, out_fast.data, rtol=1e-9, atol=1e-12)
    out_loop.sum().backward()
    out_fast.sum().backward()
    np.testing.assert_allclose(loop.conv1.weight.grad, fast.conv1.weight.grad, rtol=1e-8, atol=1e-11)
