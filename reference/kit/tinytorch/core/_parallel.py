"""Large element-wise passes of the kit split over a few threads (an internal of the kit, not course API).

NumPy releases the GIL inside a ufunc, so a ReLU over a (128, 32, 32, 32) activation split into one chunk per
thread along the batch axis uses every core the job has, as PyTorch's element-wise kernels do. Small arrays stay
on the calling thread: handing work to a thread costs tens of microseconds.

A thread that is itself one of several data-parallel workers (the training harness runs each half of a batch on
its own thread) keeps its passes on itself inside `serial()`: the other cores are busy with the other halves.
"""

import os
import threading

import numpy as np

MIN_ELEMENTS = 1 << 20  # passes over fewer elements run on the calling thread

_executor = None
_threads = None
_executor_lock = threading.Lock()
_local = threading.local()  # .serial: this thread's passes stay on it


class serial:
    """Context manager: element-wise passes of the calling thread run on that thread only within the block."""

    def __enter__(self):
        self._previous = getattr(_local, "serial", False)
        _local.serial = True
        return self

    def __exit__(self, *exc_info):
        _local.serial = self._previous
        return False


def thread_count():
    """Threads for element-wise passes: OMP_NUM_THREADS / OPENBLAS_NUM_THREADS (what the job was given), else CPUs."""
    global _threads
    if _threads is None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            value = os.environ.get(name, "")
            if value.isdigit() and int(value) > 0:
                _threads = int(value)
                break
        else:
            _threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return _threads


def _chunks(rows, count):
    bounds = [rows * k // count for k in range(count + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(count) if bounds[k] < bounds[k + 1]]


def elementwise(function, out, *arrays):
    """out[...] = function(*arrays, out=out) by batch-axis chunks in parallel; arrays are out's shape (or scalars).

    `function(*chunks, out=chunk)` must write only its output chunk. Returns out.
    """
    global _executor
    count = min(thread_count(), out.shape[0] if out.ndim else 1)
    if count <= 1 or out.size < MIN_ELEMENTS or getattr(_local, "serial", False):
        function(*arrays, out=out)
        return out
    if _executor is None:
        # Imported here, not with the module: concurrent.futures (with logging) is about two thirds of the kit's
        # import time, which every correctness job pays, and a job with one thread never makes a pool.
        from concurrent.futures import ThreadPoolExecutor

        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=max(1, thread_count() - 1), thread_name_prefix="tinytorch")
    parts = _chunks(out.shape[0], count)

    def run(bounds):
        low, high = bounds
        function(*(a[low:high] if isinstance(a, np.ndarray) and a.ndim else a for a in arrays), out=out[low:high])

    futures = [_executor.submit(run, bounds) for bounds in parts[1:]]
    run(parts[0])
    for future in futures:
        future.result()
    return out
