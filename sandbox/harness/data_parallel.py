"""Data-parallel training steps: each share of a batch on its own thread, through its own copy of the network.

Runs INSIDE the sandbox (imports only the standard library and NumPy; the kit is reached through the objects
the training harness hands in). Most of a NumPy training step (column copies, element-wise passes, reductions)
runs on one core; matrix products alone spread over BLAS's threads. Splitting the batch instead, one share per
core, keeps every core busy for the whole step. NumPy releases the GIL inside its loops, so Python threads do.

Each worker owns a replica network built from the same student module with the same initial parameters: its
own layer instances, so a layer that keeps `self.cache = x` between forward and backward never sees another
worker's input. Before every step each replica's parameter Tensors are pointed at the primary's arrays (an
optimizer may update them in place or rebind `.data`; re-pointing is right either way). Each worker runs
forward, loss and backward of its share; the shares' gradients, weighted by share size, are the batch-mean
gradient, left in the primary's `.grad` for one optimizer step. Inside a worker BLAS and the kit's element-wise
helpers stay on that worker's thread (`pinned`), as the other cores are busy with the other shares.

Code that keeps state outside its layer instances (a module-level cache) can race between workers; the trainer
compares this step's gradient with the one-pass gradient on its probe batches and falls back when they differ.
"""

from __future__ import annotations

import ctypes
import glob
import os
import queue
import threading
from contextlib import contextmanager

import numpy as np

MIN_SAMPLES_PER_WORKER = 16  # smaller shares (a tiny last batch) run as one pass on the calling thread

_blas_local_setter = None  # OpenBLAS's per-thread thread count (0.3.27+), looked up once; False when absent


def _find_blas_local_setter():
    """ctypes openblas_set_num_threads_local(int) -> int of the OpenBLAS this process loaded, or None."""
    paths = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as handle:
            paths = sorted({line.split()[-1] for line in handle if "openblas" in line and ".so" in line})
    except OSError:
        pass
    package = os.path.dirname(os.path.dirname(np.__file__))
    paths += glob.glob(os.path.join(package, "numpy.libs", "*openblas*.so*"))
    for path in paths:
        try:
            function = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
        return function
    return None


def can_pin_blas() -> bool:
    """Whether BLAS can be held to one thread for the calling thread only."""
    global _blas_local_setter
    if _blas_local_setter is None:
        _blas_local_setter = _find_blas_local_setter() or False
    return bool(_blas_local_setter)


def _kit_serial():
    """The kit's context that keeps its element-wise passes on the calling thread, if the kit has one."""
    try:
        from tinytorch.core._parallel import serial
    except ImportError:
        return None
    return serial


@contextmanager
def pinned():
    """Within the block the calling thread's BLAS calls and the kit's element-wise passes stay on it."""
    serial = _kit_serial()
    previous = _blas_local_setter(1) if can_pin_blas() else None
    try:
        if serial is None:
            yield
        else:
            with serial():
                yield
    finally:
        if previous is not None:
            _blas_local_setter(previous)


class _Worker:
    """A daemon thread that runs one call at a time (a hung call never holds the process open at exit)."""

    def __init__(self, index: int):
        self.jobs: queue.Queue = queue.Queue()
        self.results: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._loop, name=f"harness-share-{index}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            call = self.jobs.get()
            try:
                self.results.put((True, call()))
            except BaseException as error:  # handed to the caller, raised there
                self.results.put((False, error))

    def submit(self, call) -> None:
        self.jobs.put(call)

    def result(self):
        ok, value = self.results.get()
        if not ok:
            raise value
        return value

    def interrupt(self, exception: type, wait_s: float) -> None:
        """Raise `exception` inside the running call (at its next Python line) and wait for it to end."""
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread.ident), ctypes.py_object(exception))
        try:
            self.results.get(timeout=wait_s)
        except queue.Empty:
            pass


class Replica:
    """One worker's network, loss and parameters: what `make_network()` and `make_loss()` build."""

    def __init__(self, network, loss_fn):
        self.network, self.loss_fn = network, loss_fn
        self.params = network.params  # name -> Tensor


def share_bounds(count: int, workers: int) -> list[tuple[int, int]]:
    workers = max(1, min(workers, count // MIN_SAMPLES_PER_WORKER))
    edges = [count * k // workers for k in range(workers + 1)]
    return [(edges[k], edges[k + 1]) for k in range(workers)]


class Interrupted(BaseException):
    """Raised inside a worker whose step was abandoned (a deadline or an error on another share)."""


class DataParallel:
    """Batch-mean gradients of the primary network, computed share by share on one thread per member.

    Args:
        tensor: the kit's Tensor class.
        members: the primary Replica (its `.grad`s receive the result; its share runs on the calling thread),
            then one Replica per extra worker thread.
        worker_context: entered around each share's work when the batch is split (default `pinned`; a benchmark
            whose layers have thread pools of their own adds theirs).
    """

    INTERRUPT_WAIT_S = 5.0

    def __init__(self, tensor, members: list[Replica], worker_context=pinned):
        self.tensor, self.members, self.worker_context = tensor, members, worker_context
        self.workers = [_Worker(index) for index in range(1, len(members))]

    def gradients(self, x: np.ndarray, y: np.ndarray):
        """Forward, loss and backward of each share; leaves the batch-mean gradient in the primary's `.grad`.

        Returns (logits, loss) for the whole batch as kit Tensors (the loss is the batch mean).
        """
        bounds = share_bounds(len(x), len(self.members))
        for member in self.members:
            for name, param in member.params.items():
                param.grad = None
                if member is not self.members[0]:
                    param.data = self.members[0].params[name].data
        calls = [self._call(member, x[low:high], y[low:high], len(bounds) > 1)
                 for member, (low, high) in zip(self.members, bounds)]
        running = self.workers[:len(calls) - 1]
        for worker, call in zip(running, calls[1:]):
            worker.submit(call)
        try:
            outputs = [calls[0]()] + [worker.result() for worker in running]
        except BaseException:
            for worker in running:
                if worker.thread.is_alive():
                    worker.interrupt(Interrupted, self.INTERRUPT_WAIT_S)
            raise
        shares = [(high - low) / len(x) for low, high in bounds]
        if len(bounds) > 1:
            self._average(shares)
        loss = sum(share * value for share, (_, value) in zip(shares, outputs))
        logits = np.concatenate([logits for logits, _ in outputs]) if len(outputs) > 1 else outputs[0][0]
        return self.tensor(logits), self.tensor(np.array(loss, dtype=np.float32))

    def _call(self, member: Replica, x: np.ndarray, y: np.ndarray, pin: bool):
        def run():
            if not pin:
                return self._share(member, x, y)
            with self.worker_context():
                return self._share(member, x, y)

        return run

    def _share(self, member: Replica, x: np.ndarray, y: np.ndarray):
        logits = member.network.forward(self.tensor(x))
        loss = member.loss_fn(logits, self.tensor(y))
        loss.backward()
        return (np.array(np.asarray(getattr(logits, "data", logits)), copy=True),
                float(np.asarray(getattr(loss, "data", loss)).reshape(-1)[0]))

    def _average(self, shares: list[float]) -> None:
        """primary .grad = sum over members of share * that member's .grad (None where no member has one)."""
        for name, param in self.members[0].params.items():
            weighted = []
            for member, share in zip(self.members, shares):
                grad = member.params[name].grad
                if grad is not None:
                    weighted.append((np.asarray(getattr(grad, "data", grad)), share))
            total = weighted_sum(weighted)
            param.grad = None if total is None else total.astype(param.data.dtype, copy=False)


def weighted_sum(weighted: list[tuple[np.ndarray, float]]) -> np.ndarray | None:
    """The sum of share * gradient over (gradient, share) pairs, as a new array; None for no pairs.

    Equal shares (a batch that divides evenly) are summed first and scaled once: one pass and one new array per
    parameter fewer, on the main thread while no share runs (SimpleCNN's two halves: 0.50 -> 0.37 ms a step).
    """
    if len(weighted) > 1 and len({share for _, share in weighted}) == 1 and all(
            grad.dtype.kind == "f" for grad, _ in weighted):
        total = np.add(weighted[0][0], weighted[1][0])
        for grad, _ in weighted[2:]:
            np.add(total, grad, out=total)
        total *= total.dtype.type(weighted[0][1])
        return total
    total = None
    for grad, share in weighted:
        scaled = grad * grad.dtype.type(share) if grad.dtype.kind == "f" else grad * share
        total = scaled if total is None else np.add(total, scaled, out=total)
    return total


def gradient_mismatch(split: dict, one_pass: dict, rtol: float = 1e-3) -> str | None:
    """The first parameter whose split gradient is off the one-pass one by more than float32 rounding, or None.

    Off means |split - one_pass| > rtol * |one_pass| (norms over the parameter) plus a millionth of the whole
    gradient's norm, so a parameter whose gradient is almost zero is not judged on rounding alone.
    """
    arrays = {name: None if grad is None else np.asarray(getattr(grad, "data", grad), dtype=np.float64)
              for name, grad in one_pass.items()}
    total = float(np.sqrt(sum(float(np.sum(a * a)) for a in arrays.values() if a is not None)))
    for name, reference in arrays.items():
        other = split.get(name)
        if (other is None) != (reference is None):
            return f"{name}: a gradient on one path only"
        if reference is None:
            continue
        other = np.asarray(getattr(other, "data", other), dtype=np.float64)
        if other.shape != reference.shape:
            return f"{name}: shapes {other.shape} and {reference.shape}"
        difference = float(np.linalg.norm(other - reference))
        allowed = rtol * float(np.linalg.norm(reference)) + 1e-6 * total
        if not (np.isfinite(difference) and difference <= allowed):
            return f"{name}: off by {difference:.3g}, allowed {allowed:.3g}"
    return None
