"""Linear, activations, Module parameter discovery and the DataLoader."""

import numpy as np
import pytest
import torch

from tinytorch.core.activations import ReLU, Sigmoid, Softmax
from tinytorch.core.dataloader import DataLoader, Dataset, TensorDataset
from tinytorch.core.layers import Linear, Module, Sequential
from tinytorch.core.tensor import Tensor


@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(rng, bias):
    layer = Linear(5, 3, bias=bias)
    assert layer.weight.shape == (5, 3) and layer.weight.dtype == np.float32 and layer.weight.requires_grad
    assert (layer.bias is not None) == bias
    x = Tensor(rng.standard_normal((4, 5)).astype(np.float32), requires_grad=True)
    out = layer(x)
    upstream = rng.standard_normal((4, 3)).astype(np.float32)
    out.backward(upstream)
    tx = torch.tensor(x.data, requires_grad=True)
    tw = torch.tensor(layer.weight.data, requires_grad=True)
    tb = torch.tensor(layer.bias.data, requires_grad=True) if bias else None
    expected = tx @ tw + (tb if bias else 0)
    expected.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.weight.grad, tw.grad.numpy(), rtol=1e-5, atol=1e-6)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, tb.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_linear_init_is_seeded_by_numpy():
    np.random.seed(3)
    a = Linear(4, 2).weight.data.copy()
    np.random.seed(3)
    np.testing.assert_array_equal(Linear(4, 2).weight.data, a)
    assert np.abs(a).max() <= 0.5


def test_activations_match_torch(rng):
    data = rng.standard_normal((3, 4)) * 5
    for ours, theirs in ((ReLU(), torch.relu), (Sigmoid(), torch.sigmoid), (Softmax(), lambda t: torch.softmax(t, -1))):
        x = Tensor(data.copy(), requires_grad=True)
        out = ours(x)
        upstream = rng.standard_normal(out.shape)
        out.backward(upstream)
        tx = torch.tensor(data, requires_grad=True)
        expected = theirs(tx)
        expected.backward(torch.tensor(upstream))
        np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_sigmoid_has_no_overflow_warning():
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out = Sigmoid()(Tensor(np.array([-1000.0, 0.0, 1000.0], dtype=np.float32)))
    np.testing.assert_allclose(out.data, [0.0, 0.5, 1.0])


class PlainConv:
    """A layer written without the Module base (as in the module text)."""

    def __init__(self):
        self.weight = Tensor(np.zeros((2, 1, 3, 3)), requires_grad=True)
        self.bias = Tensor(np.zeros(2), requires_grad=True)

    def forward(self, x):
        return x


class Net(Module):
    def __init__(self):
        self.conv1 = PlainConv()
        self.fc1 = Linear(4, 3)
        self.relu = ReLU()
        self.blocks = [Linear(3, 3), Sequential(Linear(3, 2, bias=False))]
        self.shared = self.fc1.weight  # the same tensor twice is one parameter
        self.constant = Tensor(np.ones(3))

    def forward(self, x):
        return x


def test_parameters_are_found_recursively_with_names():
    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias",
                     "blocks.1.layers.0.weight"]
    assert len(net.parameters()) == 7
    for p in net.parameters():
        p.grad = np.ones_like(p.data)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_module_call_runs_forward():
    model = Sequential(Linear(2, 2), ReLU())
    assert model(Tensor(np.ones((1, 2), dtype=np.float32))).shape == (1, 2)


def test_dataloader_batches_and_seeded_shuffle():
    images = np.arange(10 * 2, dtype=np.float32).reshape(10, 2)
    labels = np.arange(10)
    loader = DataLoader(TensorDataset(images, labels), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [b[0].shape for b in batches] == [(4, 2), (4, 2), (2, 2)]
    np.testing.assert_array_equal(batches[2][1].data, [8, 9])
    assert batches[0][1].dtype == np.int64  # labels keep their integer dtype

    def order(seed):
        return np.concatenate([b[1].data for b in DataLoader(TensorDataset(images, labels), 4, True, seed=seed)])

    assert sorted(order(7)) == list(range(10))
    np.testing.assert_array_equal(order(7), order(7))
    assert not np.array_equal(order(7), order(8))
    assert len(list(DataLoader(TensorDataset(images, labels), batch_size=4, drop_last=True))) == 2


def test_dataloader_collates_a_plain_dataset():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=np.float32), i

    (x, y), *_ = list(DataLoader(Squares(), batch_size=3))
    np.testing.assert_array_equal(x.data, [[0, 0], [1, 1], [2, 4]])
    np.testing.assert_array_equal(y.data, [0, 1, 2])


def test_nn_reexports():
    import tinytorch.nn as nn
    from tinytorch.core.losses import CrossEntropyLoss

    assert nn.Linear is Linear and nn.ReLU is ReLU and nn.Module is Module and nn.CrossEntropyLoss is CrossEntropyLoss
    assert nn.Sigmoid is Sigmoid and nn.Softmax is Softmax
    out = nn.functional.relu(Tensor(np.array([-1.0, 2.0])))
    np.testing.assert_array_equal(out.data, [0.0, 2.0])


def test_course_compatibility_names():
    from tinytorch.core.autograd import enable_autograd
    from tinytorch.core.layers import Dropout, Layer

    enable_autograd()
    assert Layer is Module
    x = Tensor(np.ones((200, 50), dtype=np.float32), requires_grad=True)
    dropout = Dropout(0.5)
    out = dropout(x)
    kept = out.data != 0
    assert 0.3 < kept.mean() < 0.7 and np.allclose(out.data[kept], 2.0)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, out.data)
    assert dropout.eval()(x) is x
