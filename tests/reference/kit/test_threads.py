"""The kit under the harness's data-parallel step: graphs built and differentiated on several threads at once."""

from __future__ import annotations

import gc
import threading

import numpy as np

from tinytorch.core import _parallel
from tinytorch.core.autograd import is_grad_enabled, no_grad
from tinytorch.core.tensor import Tensor


def test_no_grad_in_one_thread_leaves_the_others_recording():
    inside, entered, leave = {}, threading.Event(), threading.Event()

    def hold_no_grad():
        with no_grad():
            inside["enabled"] = is_grad_enabled()
            entered.set()
            leave.wait(10)

    thread = threading.Thread(target=hold_no_grad)
    thread.start()
    assert entered.wait(10)
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    recorded = (x * 2).requires_grad
    leave.set()
    thread.join(10)
    assert inside["enabled"] is False and is_grad_enabled() and recorded


def test_backward_on_two_threads_at_once_gives_each_its_own_gradient_and_restores_the_collector():
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((64, 256)).astype(np.float32) for _ in range(2)]
    weights = [Tensor(rng.standard_normal((256, 32)).astype(np.float32), requires_grad=True) for _ in range(2)]
    barrier = threading.Barrier(2)

    def work(index):
        barrier.wait(10)
        for _ in range(20):
            weights[index].grad = None
            with _parallel.serial():
                (Tensor(inputs[index]).matmul(weights[index]).relu() * 3.0).sum().backward()

    assert gc.isenabled()
    threads = [threading.Thread(target=work, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert gc.isenabled()
    for x, w in zip(inputs, weights):
        expected = x.T @ ((x @ w.data > 0) * 3.0).astype(np.float32)
        np.testing.assert_allclose(w.grad, expected, rtol=1e-4, atol=1e-4)


def test_serial_keeps_element_wise_passes_on_the_calling_thread(monkeypatch):
    monkeypatch.setattr(_parallel, "_threads", 2)
    monkeypatch.setattr(_parallel, "MIN_ELEMENTS", 0)
    seen = []

    def record(a, out):
        seen.append(threading.get_ident())
        np.copyto(out, a)

    with _parallel.serial():
        _parallel.elementwise(record, np.empty(8), np.ones(8))
    assert seen == [threading.get_ident()]
    _parallel.elementwise(record, np.empty(8), np.ones(8))
    assert len(seen) == 3 and any(ident != threading.get_ident() for ident in seen[1:])
