"""The kit has the course's public names at the course's module paths, with the course's signatures and behaviour."""

import importlib
import inspect
import sys
import types

import numpy as np
import pytest
import torch

from tinytorch.core.tensor import Tensor

# Public names of the course package (MLSysBook/TinyTorch, tinytorch/*/__all__) that module 09 and its training use.
COURSE_NAMES = {
    "tinytorch.core.autograd": ["EPSILON", "Function", "AddBackward", "MulBackward", "SubBackward", "DivBackward",
                                "MatmulBackward", "TransposeBackward", "PermuteBackward", "EmbeddingBackward",
                                "SliceBackward", "ReshapeBackward", "SumBackward", "ReLUBackward", "SigmoidBackward",
                                "SoftmaxBackward", "GELUBackward", "MSEBackward", "BCEBackward",
                                "CrossEntropyBackward", "enable_autograd"],
    "tinytorch.core.layers": ["XAVIER_SCALE_FACTOR", "HE_SCALE_FACTOR", "DROPOUT_MIN_PROB", "DROPOUT_MAX_PROB",
                              "Layer", "Linear", "Dropout"],
    "tinytorch.core.activations": ["ReLU", "Sigmoid", "Tanh", "GELU", "Softmax"],
    "tinytorch.core.losses": ["EPSILON", "log_softmax", "MSELoss", "CrossEntropyLoss", "BinaryCrossEntropyLoss"],
    "tinytorch.core.optimizers": ["DEFAULT_LEARNING_RATE_SGD", "DEFAULT_LEARNING_RATE_ADAM", "DEFAULT_MOMENTUM",
                                  "DEFAULT_BETA1", "DEFAULT_BETA2", "DEFAULT_EPS", "DEFAULT_WEIGHT_DECAY_ADAMW",
                                  "Optimizer", "SGD", "Adam", "AdamW"],
    "tinytorch.core.training": ["DEFAULT_MAX_LR", "DEFAULT_MIN_LR", "DEFAULT_TOTAL_EPOCHS", "CosineSchedule",
                                "clip_grad_norm", "Trainer"],
    "tinytorch.data.loader": ["Dataset", "TensorDataset", "DataLoader", "RandomHorizontalFlip", "RandomCrop",
                              "Compose"],
    "tinytorch": ["Tensor", "Sigmoid", "ReLU", "Tanh", "GELU", "Softmax", "Layer", "Linear", "Dropout", "MSELoss",
                  "CrossEntropyLoss", "BinaryCrossEntropyLoss", "SGD", "Adam", "AdamW", "Trainer", "CosineSchedule",
                  "clip_grad_norm", "Dataset", "TensorDataset", "DataLoader", "RandomHorizontalFlip", "RandomCrop",
                  "Compose", "enable_autograd"],
}
# Course signatures student code calls (parameter names in order, defaults where the course has them).
SIGNATURES = {
    ("tinytorch.core.layers", "Linear"): "(in_features, out_features, bias=True)",
    ("tinytorch.core.layers", "Dropout"): "(p=0.5)",
    ("tinytorch.core.optimizers", "SGD"): "(params, lr=0.01, momentum=0.0",
    ("tinytorch.core.optimizers", "Adam"): "(params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.0)",
    ("tinytorch.core.optimizers", "AdamW"): "(params, lr=0.001, betas=(0.9, 0.999), eps=1e-08, weight_decay=0.01)",
    ("tinytorch.core.training", "CosineSchedule"): "(max_lr=0.1, min_lr=0.01, total_epochs=100)",
    ("tinytorch.core.training", "Trainer"): "(model, optimizer, loss_fn, scheduler=None, grad_clip_norm=None)",
    ("tinytorch.core.training", "clip_grad_norm"): "(parameters, max_norm=1.0)",
    ("tinytorch.data.loader", "DataLoader"): "(dataset, batch_size",
    ("tinytorch.data.loader", "RandomCrop"): "(size, padding=4)",
    ("tinytorch.core.autograd", "ReLUBackward"): "(input_tensor)",
    ("tinytorch.core.autograd", "SigmoidBackward"): "(input_tensor, output_tensor)",
    ("tinytorch.core.autograd", "SoftmaxBackward"): "(input_tensor, output_tensor, dim=-1)",
    ("tinytorch.core.autograd", "ReshapeBackward"): "(tensor, original_shape)",
}


@pytest.mark.parametrize("module_name", sorted(COURSE_NAMES))
def test_course_names_at_course_paths(module_name):
    module = importlib.import_module(module_name)
    missing = [name for name in COURSE_NAMES[module_name] if not hasattr(module, name)]
    assert missing == []


@pytest.mark.parametrize("where", sorted(SIGNATURES))
def test_course_signatures(where):
    module_name, name = where
    value = getattr(importlib.import_module(module_name), name)
    assert str(inspect.signature(value)).startswith(SIGNATURES[where])


def _leaf(rng, shape):
    return Tensor(rng.standard_normal(shape), requires_grad=True)


def _torch_grad(function, *arrays):
    tensors = [torch.tensor(a, requires_grad=True) for a in arrays]
    function(*tensors).backward(torch.ones(()))
    return [t.grad.numpy() for t in tensors]


def test_relu_backward_takes_one_input_like_the_course(rng):
    from tinytorch.core.autograd import ReLUBackward

    x = _leaf(rng, (3, 4))
    result = Tensor(np.maximum(0, x.data))
    result.requires_grad = True
    result._grad_fn = ReLUBackward(x)
    (result * result).sum().backward()
    expected, = _torch_grad(lambda t: (torch.relu(t) ** 2).sum(), x.data)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12)


@pytest.mark.parametrize("name", ["Sigmoid", "GELU", "Softmax"])
def test_hand_built_activation_backward_matches_torch(rng, name):
    from tinytorch.core import autograd

    x = _leaf(rng, (2, 5))
    weights = rng.standard_normal((2, 5))
    if name == "Sigmoid":
        values = 1 / (1 + np.exp(-x.data))
        function = autograd.SigmoidBackward(x, Tensor(values))
        reference = torch.sigmoid
    elif name == "GELU":
        from tinytorch.core.activations import GELU

        values = GELU()(Tensor(x.data)).data
        function = autograd.GELUBackward(x)
        reference = lambda t: torch.nn.functional.gelu(t, approximate="tanh")  # noqa: E731
    else:
        shifted = np.exp(x.data - x.data.max(axis=-1, keepdims=True))
        values = shifted / shifted.sum(axis=-1, keepdims=True)
        function = autograd.SoftmaxBackward(x, Tensor(values), dim=-1)
        reference = lambda t: torch.softmax(t, dim=-1)  # noqa: E731
    result = Tensor(values)
    result.requires_grad = True
    result._grad_fn = function
    (result * Tensor(weights)).sum().backward()
    expected, = _torch_grad(lambda t: (reference(t) * torch.tensor(weights)).sum(), x.data)
    np.testing.assert_allclose(values, reference(torch.tensor(x.data)).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-9, atol=1e-12)


def test_binary_ops_and_reshape_backward_by_hand(rng):
    from tinytorch.core import autograd

    a, b = _leaf(rng, (2, 3)), _leaf(rng, (3, 4))
    product = Tensor(a.data @ b.data)
    product.requires_grad = True
    product._grad_fn = autograd.MatmulBackward(a, b)
    flat = Tensor(product.data.reshape(-1))
    flat.requires_grad = True
    flat._grad_fn = autograd.ReshapeBackward(product, product.shape)
    (flat * flat).sum().backward()
    expected_a, expected_b = _torch_grad(lambda s, t: ((s @ t).reshape(-1) ** 2).sum(), a.data, b.data)
    np.testing.assert_allclose(a.grad, expected_a, rtol=1e-10)
    np.testing.assert_allclose(b.grad, expected_b, rtol=1e-10)


def test_losses_match_torch(rng):
    from tinytorch.core.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, log_softmax

    logits = _leaf(rng, (4, 3))
    labels = np.array([0, 2, 1, 2])
    CrossEntropyLoss()(logits, Tensor(labels)).backward()
    expected, = _torch_grad(lambda t: torch.nn.functional.cross_entropy(t, torch.tensor(labels)), logits.data)
    np.testing.assert_allclose(logits.grad, expected, rtol=1e-10)
    np.testing.assert_allclose(log_softmax(Tensor(logits.data)).data,
                               torch.log_softmax(torch.tensor(logits.data), dim=-1).numpy(), rtol=1e-12)
    probabilities = Tensor(1 / (1 + np.exp(-rng.standard_normal((5, 1)))), requires_grad=True)
    targets = (rng.random((5, 1)) > 0.5).astype(np.float64)
    loss = BinaryCrossEntropyLoss()(probabilities, Tensor(targets))
    loss.backward()
    expected, = _torch_grad(lambda t: torch.nn.functional.binary_cross_entropy(t, torch.tensor(targets)),
                            probabilities.data)
    np.testing.assert_allclose(float(loss.data), torch.nn.functional.binary_cross_entropy(
        torch.tensor(probabilities.data), torch.tensor(targets)).item(), rtol=1e-6)
    np.testing.assert_allclose(probabilities.grad, expected, rtol=1e-6)


def test_function_keeps_next_functions(rng):
    from tinytorch.core.autograd import ReLUBackward

    x = _leaf(rng, (2, 2))
    hidden = x * 2.0
    function = ReLUBackward(hidden)
    assert function.next_functions == [hidden._grad_fn]
    function.next_functions = ["assigned"]
    assert function.next_functions == ["assigned"]


def test_trainer_with_schedule_and_clipping_reduces_the_loss(rng):
    from tinytorch import CosineSchedule, CrossEntropyLoss, DataLoader, Linear, SGD, TensorDataset, Trainer

    np.random.seed(0)
    features = rng.standard_normal((64, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(np.int64)
    model = Linear(4, 2)
    schedule = CosineSchedule(max_lr=0.5, min_lr=0.05, total_epochs=5)
    trainer = Trainer(model, SGD(model.parameters(), lr=0.5, momentum=0.9), CrossEntropyLoss(), schedule,
                      grad_clip_norm=1.0)
    loader = DataLoader(TensorDataset(Tensor(features), Tensor(labels)), batch_size=16, shuffle=True)
    first = trainer.train_epoch(loader)
    for _ in range(4):
        last = trainer.train_epoch(loader)
    loss, accuracy = trainer.evaluate(loader)
    assert last < first and accuracy > 0.9
    assert trainer.history["learning_rates"][0] == pytest.approx(0.5) and schedule.get_lr(5) == 0.05


def test_clip_grad_norm_returns_the_norm_and_scales(rng):
    from tinytorch import clip_grad_norm

    a, b = _leaf(rng, (3,)), _leaf(rng, (2,))
    a.grad, b.grad = np.array([3.0, 0.0, 0.0]), np.array([0.0, 4.0])
    assert clip_grad_norm([a, b], max_norm=1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(np.concatenate([a.grad, b.grad]), [0.6, 0, 0, 0, 0.8])


def test_augmentations_keep_the_kind_and_shape():
    from tinytorch.data.loader import Compose, RandomCrop, RandomHorizontalFlip

    image = np.arange(3 * 8 * 8, dtype=np.float32).reshape(3, 8, 8)
    np.random.seed(1)
    flipped = RandomHorizontalFlip(p=1.0)(Tensor(image))
    assert isinstance(flipped, Tensor) and np.array_equal(flipped.data, image[:, :, ::-1])
    cropped = Compose([RandomCrop(8, padding=2), RandomHorizontalFlip()])(image)
    assert isinstance(cropped, np.ndarray) and cropped.shape == (3, 8, 8)


def test_top_level_spatial_names_come_from_the_loaded_spatial_module(monkeypatch):
    import tinytorch

    fake = types.ModuleType("tinytorch.core.spatial")

    class Conv2d:
        pass

    fake.Conv2d = Conv2d
    monkeypatch.setitem(sys.modules, "tinytorch.core.spatial", fake)
    assert tinytorch.Conv2d is Conv2d
    monkeypatch.delitem(sys.modules, "tinytorch.core.spatial")
    with pytest.raises(AttributeError, match="tinytorch.core.spatial"):
        tinytorch.MaxPool2d


def test_dense_takes_the_old_course_argument_names():
    from tinytorch.core.layers import Dense, Linear

    layer = Dense(input_size=6, output_size=4, use_bias=False)
    assert isinstance(layer, Linear) and layer.weight.shape == (6, 4) and layer.bias is None
    assert Dense(3, 2).weight.shape == (3, 2)
