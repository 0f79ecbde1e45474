"""Process-level speed helpers for the fast reference: element-wise work on threads, and malloc tuning.

BLAS already spreads each matrix product over its threads; NumPy's element-wise passes (pooling, im2col copies)
run on one core. They release the GIL, though, so splitting a large pass into per-image chunks run on a few
Python threads uses the other cores too, as PyTorch does.

That only pays if the other core is free: after every matrix product OpenBLAS's idle worker busy-waits for about
0.1 s (2^28 cycles) before it sleeps, and a training step runs a matrix product every few milliseconds, so the
worker would always be spinning on the core the element-wise chunks need. Processes that train with the reference
set OPENBLAS_THREAD_TIMEOUT=4 (2^4 cycles: sleep at once) in their environment before NumPy is imported, as the
benchmarks and the sandbox's job environment do; waking the worker again costs microseconds per product.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterator

# Below this many elements a pass is not split: thread hand-off (tens of microseconds) would cost more.
PARALLEL_MIN_ELEMENTS = 1 << 18

_threads: int | None = None
_executor: ThreadPoolExecutor | None = None
_executor_size = 0
_local = threading.local()  # .serial: this thread is one data-parallel worker; its passes stay on it
_blas_set_local = None  # OpenBLAS's per-thread thread count setter (0.3.27+), once looked up


def _default_threads() -> int:
    for variable in ("REFERENCE_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(variable, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def num_threads() -> int:
    """Threads used for element-wise passes (REFERENCE_NUM_THREADS, else OMP/OPENBLAS_NUM_THREADS, else CPUs)."""
    global _threads
    if _threads is None:
        _threads = max(1, _default_threads())
    return _threads


def set_num_threads(count: int) -> None:
    """Use `count` threads (>= 1) for element-wise passes from now on."""
    global _threads, _executor
    if count < 1:
        raise ValueError(f"thread count must be >= 1, got {count}")
    _threads = count
    if _executor is not None:
        _executor.shutdown(wait=True)
        _executor = None


def _ensure_executor(workers: int) -> None:
    """A pool of at least `workers` threads (and num_threads() - 1) besides the caller."""
    global _executor, _executor_size
    wanted = max(workers, num_threads() - 1, 1)
    if _executor is None or _executor_size < wanted:
        if _executor is not None:
            _executor.shutdown(wait=True)
        _executor, _executor_size = ThreadPoolExecutor(max_workers=wanted, thread_name_prefix="reference"), wanted


def run_chunks(work: Callable[[int, int], None], n_items: int, total_elements: int) -> None:
    """Call work(start, stop) over [0, n_items) split into contiguous chunks, one per thread, and wait.

    `work` must write only its own chunk's part of any output. Small passes run in the calling thread.
    """
    chunks = min(num_threads(), n_items)
    if chunks <= 1 or total_elements < PARALLEL_MIN_ELEMENTS or getattr(_local, "serial", False):
        work(0, n_items)
        return
    _ensure_executor(chunks - 1)
    bounds = [n_items * k // chunks for k in range(chunks + 1)]
    futures = [_executor.submit(work, bounds[k], bounds[k + 1]) for k in range(1, chunks)]
    work(bounds[0], bounds[1])
    for future in futures:
        future.result()


def _find_blas_set_local():
    """ctypes function openblas_set_num_threads_local(int) -> int of the OpenBLAS NumPy uses, or None."""
    import numpy as np

    package = os.path.dirname(os.path.dirname(np.__file__))
    for pattern in ("numpy.libs/libscipy_openblas*.so*", "numpy.libs/libopenblas*.so*", "numpy/.libs/lib*openblas*.so*"):
        for path in glob.glob(os.path.join(package, pattern)):
            try:
                function = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
            return function
    return None


def can_pin_blas_per_thread() -> bool:
    """Whether BLAS calls can be limited to one thread for the calling thread only (OpenBLAS >= 0.3.27)."""
    global _blas_set_local
    if _blas_set_local is None:
        _blas_set_local = _find_blas_set_local() or False
    return bool(_blas_set_local)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Within the block, the calling thread's element-wise passes and BLAS calls use that thread only.

    For data-parallel workers (`map_workers`): each runs its slice of a batch on its own core, so nothing inside
    may spread over the other cores as well.
    """
    previous = getattr(_local, "serial", False)
    _local.serial = True
    blas_previous = _blas_set_local(1) if can_pin_blas_per_thread() else None
    try:
        yield
    finally:
        _local.serial = previous
        if blas_previous is not None:
            _blas_set_local(blas_previous)


def map_workers(work: Callable[[int], object], count: int) -> list:
    """[work(0), ..., work(count - 1)], each on its own thread (the caller runs work(0)), each single-threaded."""

    def run(index: int):
        with single_threaded():
            return work(index)

    if count <= 1:
        return [run(0)] if count == 1 else []
    _ensure_executor(count - 1)
    futures = [_executor.submit(run, index) for index in range(1, count)]
    first = run(0)
    return [first] + [future.result() for future in futures]


def reuse_freed_memory() -> bool:
    """Ask glibc to keep freed large blocks for reuse instead of returning them to the kernel (True if done).

    A training step allocates and frees a few hundred MB of activations and columns. glibc serves blocks above
    32 MB (its largest dynamic threshold) with fresh mmap()s, so every step pays a page fault and a page
    zeroing per 4 KiB touched. Raising the mmap and trim thresholds lets the heap recycle that memory. Threads
    other than the main one get arenas of their own, heaps of at most 64 MiB that glibc unmaps as soon as one
    empties (whatever the trim threshold), and a block too large for such a heap is mmapped even with mmap off:
    a data-parallel worker whose share of a step needs more than that faulted ~8 MB afresh every step (the kit's
    split step: 2000 page faults, 8-15 ms of CPU). One arena keeps every thread's blocks in the main heap. This is
    process-wide, so callers opt in (benchmarks and the reference training loop), never on import.
    """
    if not sys.platform.startswith("linux"):
        return False
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max, m_arena_max = -1, -4, -8
    # glibc caps M_MMAP_THRESHOLD at 32 MiB, below a conv2 column matrix, so mmap is switched off altogether.
    return (bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, (1 << 31) - 1))
            and bool(mallopt(m_arena_max, 1)))
