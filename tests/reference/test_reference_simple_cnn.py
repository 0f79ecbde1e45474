"""SimpleCNN reference against an equivalent PyTorch model: forward, loss, gradients, optimizer steps, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reference import simple_cnn


def torch_forward(params: dict, x: np.ndarray) -> torch.Tensor:
    conv1 = F.conv2d(torch.tensor(x), params["conv1.weight"], params["conv1.bias"], padding=1)
    pool1 = F.max_pool2d(F.relu(conv1), 2)
    pool2 = F.max_pool2d(F.relu(F.conv2d(pool1, params["conv2.weight"], params["conv2.bias"], padding=1)), 2)
    hidden = F.relu(pool2.reshape(x.shape[0], -1) @ params["fc1.weight"] + params["fc1.bias"])
    return hidden @ params["fc2.weight"] + params["fc2.bias"]


def as_torch(params: dict) -> dict:
    return {name: torch.tensor(value, requires_grad=True) for name, value in params.items()}


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-9), (np.float32, 2e-4)])
def test_forward_loss_and_gradients_match_torch(dtype, tol):
    params = simple_cnn.init_params(1, dtype)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 32, 32)).astype(dtype)
    labels = rng.integers(0, 10, 6)
    logits, cache = simple_cnn.forward(params, x)
    loss, dlogits = simple_cnn.softmax_cross_entropy(logits, labels, label_smoothing=0.1)
    grads = simple_cnn.backward(dlogits, cache)

    torch_params = as_torch(params)
    torch_logits = torch_forward(torch_params, x)
    torch_loss = F.cross_entropy(torch_logits, torch.tensor(labels), label_smoothing=0.1)
    torch_loss.backward()

    assert logits.dtype == np.dtype(dtype) and logits.shape == (6, 10)
    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), rtol=tol, atol=tol)
    assert loss == pytest.approx(torch_loss.item(), rel=tol)
    assert list(grads) == list(simple_cnn.PARAM_SHAPES)
    for name, grad in grads.items():
        assert grad.shape == simple_cnn.PARAM_SHAPES[name] and grad.dtype == np.dtype(dtype), name
        expected = torch_params[name].grad.numpy()
        np.testing.assert_allclose(grad, expected, rtol=tol, atol=tol * np.abs(expected).max(), err_msg=name)


@pytest.mark.parametrize("workers, batch", [(2, 37), (3, 48), (2, 8)])
def test_data_parallel_gradients_match_torch_on_the_whole_batch(workers, batch):
    """Slices of the batch on separate threads, gradients summed: the whole batch's loss, logits and gradients."""
    params = simple_cnn.init_params(3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)
    labels = rng.integers(0, 10, batch)
    loss, logits, grads = simple_cnn.train_gradients(params, x, labels, label_smoothing=0.1, workers=workers)

    # PyTorch in float64: its own float32 conv1 gradient strays by ~0.5% of the largest entry at this batch size.
    torch_params = as_torch({name: value.astype(np.float64) for name, value in params.items()})
    torch_logits = torch_forward(torch_params, x.astype(np.float64))
    torch_loss = F.cross_entropy(torch_logits, torch.tensor(labels), label_smoothing=0.1)
    torch_loss.backward()
    np.testing.assert_allclose(logits, torch_logits.detach().numpy(), rtol=2e-4, atol=2e-4)
    assert loss == pytest.approx(torch_loss.item(), rel=2e-4)
    assert list(grads) == list(simple_cnn.PARAM_SHAPES)
    for name, grad in grads.items():
        expected = torch_params[name].grad.numpy()
        assert grad.dtype == np.float32
        np.testing.assert_allclose(grad, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max(), err_msg=name)


def test_predict_matches_forward_in_batches_and_needs_no_cache():
    params = simple_cnn.init_params(3)
    x = np.random.default_rng(4).standard_normal((7, 3, 32, 32)).astype(np.float32)
    logits, cache = simple_cnn.forward(params, x, train=False)
    assert cache is None
    np.testing.assert_allclose(simple_cnn.predict(params, x, batch_size=3), logits, rtol=1e-5, atol=1e-6)


def test_init_is_seeded_pytorch_default_and_valid():
    first, second, other = simple_cnn.init_params(0), simple_cnn.init_params(0), simple_cnn.init_params(1)
    assert simple_cnn.validate_params(first) == []
    for name, value in first.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, second[name])
        assert not np.array_equal(value, other[name])
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases, as torch.nn.Conv2d / Linear.
    assert np.abs(first["conv2.weight"]).max() <= 1 / np.sqrt(288)
    assert np.abs(first["conv2.weight"]).max() > 0.9 / np.sqrt(288)
    assert np.abs(first["fc1.bias"]).max() <= 1 / np.sqrt(4096)
    assert simple_cnn.init_params(0, np.float64)["fc2.weight"].dtype == np.float64


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda p: p.pop("fc2.bias"), "missing parameter 'fc2.bias'"),
        (lambda p: p.update(extra=np.zeros(3, np.float32)), "unexpected parameter 'extra'"),
        (lambda p: p.update({"fc1.weight": np.zeros((128, 4096), np.float32)}), "fc1.weight has shape (128, 4096)"),
        (lambda p: p.update({"conv1.bias": np.zeros(32, np.int64)}), "conv1.bias has dtype int64"),
        (lambda p: p["conv2.weight"].__setitem__((0, 0, 0, 0), np.nan), "conv2.weight contains NaN"),
        (lambda p: p["fc2.weight"].__setitem__((0, 0), np.inf), "fc2.weight contains NaN or infinite"),
        (lambda p: p.update({"conv1.weight": [[0.0]]}), "conv1.weight is a list"),
        (lambda p: p.update({"fc2.bias": np.zeros(10, object)}), "fc2.bias has dtype object"),
    ],
)
def test_validate_params_names_each_problem(tamper, message):
    params = simple_cnn.init_params(0)
    tamper(params)
    problems = simple_cnn.validate_params(params)
    assert any(message in problem for problem in problems), problems
    with pytest.raises(ValueError, match="invalid SimpleCNN parameters"):
        simple_cnn.predict(params, np.zeros((1, 3, 32, 32), np.float32))


def test_forward_rejects_wrong_input_shape():
    with pytest.raises(ValueError, match=r"\(N, 3, 32, 32\)"):
        simple_cnn.forward(simple_cnn.init_params(0), np.zeros((2, 3, 28, 28), np.float32))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_softmax_cross_entropy_matches_torch(smoothing):
    rng = np.random.default_rng(8)
    logits = rng.standard_normal((5, 10)) * 10
    labels = rng.integers(0, 10, 5)
    loss, dlogits = simple_cnn.softmax_cross_entropy(logits, labels, label_smoothing=smoothing)
    logits_torch = torch.tensor(logits, requires_grad=True)
    expected = F.cross_entropy(logits_torch, torch.tensor(labels), label_smoothing=smoothing)
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=1e-12)
    np.testing.assert_allclose(dlogits, logits_torch.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_softmax_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        simple_cnn.softmax_cross_entropy(np.zeros((2, 10)), np.array([0, 10]))
    with pytest.raises(ValueError, match="labels must be integers"):
        simple_cnn.softmax_cross_entropy(np.zeros((2, 10)), np.array([0.0, 1.0]))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_optimizer_steps_match_torch(optimizer):
    rng = np.random.default_rng(9)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(4)}
    torch_params = {name: torch.tensor(value.copy(), requires_grad=True) for name, value in params.items()}
    if optimizer == "sgd":
        torch_optimizer = torch.optim.SGD(torch_params.values(), lr=0.1, momentum=0.9, nesterov=True,
                                          weight_decay=5e-4)
    else:
        torch_optimizer = torch.optim.Adam(torch_params.values(), lr=0.01, weight_decay=1e-4)
    state: dict = {}
    for step in range(4):
        grads = {name: rng.standard_normal(value.shape) for name, value in params.items()}
        if optimizer == "sgd":
            simple_cnn.sgd_step(params, grads, state, lr=0.1, momentum=0.9, weight_decay=5e-4)
        else:
            simple_cnn.adam_step(params, grads, state, lr=0.01, weight_decay=1e-4)
        for name, tensor in torch_params.items():
            tensor.grad = torch.tensor(grads[name])
        torch_optimizer.step()
        for name, tensor in torch_params.items():
            np.testing.assert_allclose(params[name], tensor.detach().numpy(), rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} after step {step}")


def test_kaiming_initialisation_scales_weights_for_relu_and_zeroes_biases():
    default = simple_cnn.init_params(4)
    kaiming = simple_cnn.init_params(4, scheme="kaiming")
    assert default.keys() == kaiming.keys()
    for name, value in kaiming.items():
        assert value.shape == default[name].shape and value.dtype == np.float32
        if name.endswith(".bias"):
            assert not value.any()
        else:
            fan_in = int(np.prod(value.shape[1:])) if value.ndim == 4 else value.shape[0]
            bound = np.sqrt(6.0 / fan_in)
            assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound
    # Activations keep their scale through conv1 -> relu -> pool -> conv2 with He's scheme, shrink with the default.
    x = np.random.default_rng(0).standard_normal((16, 3, 32, 32)).astype(np.float32)
    scale = {label: float(np.abs(simple_cnn.predict(params, x)).mean()) for label, params in
             (("default", default), ("kaiming", kaiming))}
    assert scale["kaiming"] > 3 * scale["default"]
    with pytest.raises(ValueError, match="init scheme"):
        simple_cnn.init_params(4, scheme="xavier")
