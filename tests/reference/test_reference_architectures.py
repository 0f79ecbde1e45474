"""Architectures from the spec: layer lists are parsed and checked, and any of them runs like PyTorch's network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import network
from reference.architectures import (BUILT_IN, CURRENT_COURSE, MODULE_TEXT, ArchitectureError, from_layer_list,
                                     resolve)

CURRENT_AS_TEXT = ["Conv2d(3, 16, 3, padding=1)", "ReLU", "MaxPool2d(2)", "Conv2d(16, 32, kernel_size=3, padding=1)",
                   "relu", "MaxPool2d(kernel_size=2)", "Flatten", "Linear(2048, 10)"]


def test_layer_list_gives_the_current_course_network():
    parsed = from_layer_list(CURRENT_AS_TEXT)
    assert parsed.parameter_shapes() == CURRENT_COURSE.parameter_shapes()
    assert list(parsed.parameter_shapes()) == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                               "fc.weight", "fc.bias"]
    assert resolve("current_course") is CURRENT_COURSE and resolve() is MODULE_TEXT


@pytest.mark.parametrize("layers, message", [
    (["Conv2d(3, 16, 3)", "Flatten", "Linear(2048, 10)"], "in_features must be 14400"),
    (["Conv2d(3, 16, 3)", "Linear(10, 10)"], "add Flatten first"),
    (["Conv2d(3, 16)", "Flatten", "Linear(16, 10)"], "needs kernel_size"),
    (["Conv2d(4, 16, 3)", "Flatten", "Linear(14400, 10)"], "needs (4, H, W)"),
    (["Conv2d(3, 16, 3)", "Flatten"], "last layer must be a Linear"),
    (["Pool(2)", "Flatten", "Linear(3072, 10)"], "unknown layer 'Pool'"),
    (["MaxPool2d(kernel_size=2, 2)", "Flatten", "Linear(768, 10)"], "misplaced positional"),
    (["MaxPool2d(64)", "Flatten", "Linear(3, 10)"], "leaves no output positions"),
    ([], "list of 1 to"),
])
def test_bad_layer_lists_say_what_is_wrong(layers, message):
    with pytest.raises(ArchitectureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_layer_list(layers)


def torch_network(architecture, params, h):
    for layer in architecture.layers:
        options = layer.options
        if layer.kind == "conv2d":
            h = F.conv2d(h, params[f"{layer.name}.weight"], params[f"{layer.name}.bias"],
                         stride=options.get("stride", 1), padding=options.get("padding", 0))
        elif layer.kind == "relu":
            h = F.relu(h)
        elif layer.kind in ("maxpool2d", "avgpool2d"):
            pool = F.max_pool2d if layer.kind == "maxpool2d" else F.avg_pool2d
            h = pool(h, options["kernel_size"], options.get("stride"))
        elif layer.kind == "flatten":
            h = h.reshape(h.shape[0], -1)
        else:
            h = h @ params[f"{layer.name}.weight"] + params[f"{layer.name}.bias"]
    return h


@pytest.mark.parametrize("architecture", [*BUILT_IN.values(), from_layer_list(
    ["Conv2d(3, 4, 5, stride=2, padding=1)", "ReLU", "AvgPool2d(3, stride=2)", "Flatten", "Linear(196, 12)",
     "ReLU", "Linear(12, 10)"])], ids=lambda a: a.name)
def test_network_forward_and_gradients_match_torch(architecture):
    params = network.init_params(architecture, 3, np.float64)
    x = np.random.default_rng(4).standard_normal((2, 3, 32, 32))
    dout = np.random.default_rng(5).standard_normal((2, architecture.num_classes))
    out, caches = network.forward(architecture, params, x)
    dx, grads = network.backward(architecture, params, dout, caches)
    torch_params = {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}
    xt = torch.tensor(x, requires_grad=True)
    reference = torch_network(architecture, torch_params, xt)
    reference.backward(torch.tensor(dout))
    np.testing.assert_allclose(out, reference.detach().numpy(), rtol=1e-10, atol=1e-12)
    for name, value in grads.items():
        np.testing.assert_allclose(value, torch_params[name].grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
