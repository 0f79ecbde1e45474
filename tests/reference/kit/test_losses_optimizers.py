"""CrossEntropyLoss and the optimizers against PyTorch CPU."""

import numpy as np
import pytest
import torch

from tinytorch.core.losses import CrossEntropyLoss, MSELoss
from tinytorch.core.optimizers import SGD, Adam, AdamW
from tinytorch.core.tensor import Tensor


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_matches_torch(rng, dtype, label_smoothing):
    logits = (rng.standard_normal((16, 10)) * 30).astype(dtype)  # large values: needs the stable form
    labels = rng.integers(0, 10, 16)
    x = Tensor(logits, requires_grad=True)
    loss = CrossEntropyLoss(label_smoothing=label_smoothing)(x, labels)
    loss.backward()
    tx = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(tx, torch.tensor(labels), label_smoothing=label_smoothing)
    expected.backward()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert loss.dtype == dtype and loss.shape == ()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=tol)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=tol, atol=tol)


def test_cross_entropy_accepts_label_tensor_and_sum_reduction(rng):
    logits = rng.standard_normal((4, 3))
    labels = np.array([0, 2, 1, 2])
    x = Tensor(logits, requires_grad=True)
    loss = CrossEntropyLoss(reduction="sum")(x, Tensor(labels))
    (loss * 2).backward()
    tx = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(tx, torch.tensor(labels), reduction="sum")
    (expected * 2).backward()
    np.testing.assert_allclose(loss.item(), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12)


def test_cross_entropy_rejects_bad_labels():
    with pytest.raises(ValueError, match="labels"):
        CrossEntropyLoss()(Tensor(np.zeros((2, 3))), np.array([0, 3]))


def test_mse_loss(rng):
    p = Tensor(rng.standard_normal(5), requires_grad=True)
    t = rng.standard_normal(5)
    MSELoss()(p, t).backward()
    np.testing.assert_allclose(p.grad, 2 * (p.data - t) / 5)


def run_both(make_ours, make_torch, steps=6, lr_schedule=None, seed=0):
    """Optimise the same quadratic-ish objective with both; return final parameters."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
    target = rng.standard_normal((3, 4)).astype(np.float32)
    ours = [Tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    opt_ours, opt_theirs = make_ours(ours), make_torch(theirs)
    for step in range(steps):
        if lr_schedule:
            opt_ours.lr = lr_schedule(step)
            for group in opt_theirs.param_groups:
                group["lr"] = lr_schedule(step)
        opt_ours.zero_grad()
        diff = ours[0] * ours[1] - Tensor(target)
        (diff * diff).sum().backward()
        opt_ours.step()
        opt_theirs.zero_grad()
        tdiff = theirs[0] * theirs[1] - torch.tensor(target)
        (tdiff * tdiff).sum().backward()
        opt_theirs.step()
    return ours, theirs


OPTIMIZERS = {
    "sgd": (lambda p: SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    "sgd_momentum_wd": (lambda p: SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4),
                        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=5e-4)),
    "sgd_nesterov": (lambda p: SGD(p, lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4),
                     lambda p: torch.optim.SGD(p, lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4)),
    "adam": (lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01)),
    "adam_wd": (lambda p: Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2),
                lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.99), weight_decay=1e-2)),
    "adamw": (lambda p: AdamW(p, lr=0.01, weight_decay=0.1), lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_torch(name):
    ours, theirs = run_both(*OPTIMIZERS[name])
    for a, b in zip(ours, theirs):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_learning_rate_can_change_between_steps():
    schedule = [0.1, 0.05, 0.01, 0.0, 0.02, 0.03].__getitem__
    ours, theirs = run_both(lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                            lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True), lr_schedule=schedule)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.data, b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_step_updates_data_in_place_and_skips_parameters_without_gradient():
    w = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    frozen = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    storage = w.data
    opt = SGD([w, frozen], lr=0.5, momentum=0.9)
    w.grad = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    opt.step()
    assert w.data is storage
    np.testing.assert_allclose(w.data, [0.5, 0.0, -0.5])
    np.testing.assert_array_equal(frozen.data, [1.0, 1.0])
    opt.zero_grad()
    assert w.grad is None


def test_optimizer_rejects_empty_parameters():
    with pytest.raises(ValueError):
        SGD([], lr=0.1)
