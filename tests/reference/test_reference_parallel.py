"""The fast layers give bit-identical results whether their element-wise passes run on one thread or several."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from reference import layers_fast, parallel, simple_cnn


@pytest.fixture
def threads(monkeypatch):
    """Run with every pass split (no size threshold) over the given number of threads, then restore."""
    original = parallel.num_threads()
    monkeypatch.setattr(parallel, "PARALLEL_MIN_ELEMENTS", 0)

    def use(count: int) -> None:
        parallel.set_num_threads(count)

    yield use
    parallel.set_num_threads(original)


def _layer_outputs(x, w, b):
    results = []
    for stride, padding in ((1, 1), (2, 0)):
        out, cache = layers_fast.conv2d_forward(x, w, b, stride=stride, padding=padding)
        results += [out, *layers_fast.conv2d_backward(np.ones_like(out), cache)]
    pooled, pool_cache = layers_fast.maxpool2d_forward(results[0], kernel_size=2)
    results += [pooled, layers_fast.maxpool2d_backward(pooled * 3, pool_cache)]
    return results


def test_threaded_passes_match_single_thread_exactly(threads):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5, 8, 6)).astype(np.float32)
    w = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    b = rng.standard_normal(7).astype(np.float32)
    threads(1)
    expected = _layer_outputs(x, w, b)
    for count in (2, 3):
        threads(count)
        for got, want in zip(_layer_outputs(x, w, b), expected):
            np.testing.assert_array_equal(got, want)


def test_threaded_simple_cnn_step_matches_single_thread(threads):
    params = simple_cnn.init_params(0)
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    runs = []
    for count in (1, 2):
        threads(count)
        logits, cache = simple_cnn.forward(params, x)
        runs.append((logits, simple_cnn.backward(np.ones_like(logits), cache)))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    for name in simple_cnn.PARAM_SHAPES:
        np.testing.assert_array_equal(runs[0][1][name], runs[1][1][name])


def test_set_num_threads_rejects_zero():
    with pytest.raises(ValueError, match=">= 1"):
        parallel.set_num_threads(0)


def test_reuse_freed_memory_takes_effect_in_a_fresh_process():
    """Process-wide malloc tuning, so it is tried in a child process rather than in the test runner."""
    code = ("import numpy as np; from reference.parallel import reuse_freed_memory; ok = reuse_freed_memory(); "
            "a = np.ones(50_000_000, np.float32); del a; b = np.zeros(50_000_000, np.float32); "
            "print(ok, float(b.sum()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    expected = "True" if sys.platform.startswith("linux") else "False"
    assert result.stdout.split() == [expected, "0.0"]


# A data-parallel worker's step on a thread: a forward pass's activations (MB) kept, then backward temporaries
# each freed once the next exists; more than one 64 MiB thread heap in all. Prints the page faults of each round.
_WORKER_ROUNDS = """
import resource, threading
import numpy as np
{setup}
def step(faults):
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        live = [np.ones(size << 18, np.float32) for size in (7, 8, 8, 2, 19, 4, 4, 1, 1)]
        for size in (4, 4, 19, 8, 8, 8):
            live.append(np.ones(size << 18, np.float32))
            del live[-2]
        del live
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
faults = []
worker = threading.Thread(target=step, args=(faults,))
worker.start()
worker.join()
print(*faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning (Linux only)")
@pytest.mark.parametrize("how", ["reuse_freed_memory", "sandbox environment"])
def test_a_worker_thread_reuses_its_freed_memory(how):
    """After the first step a worker thread's arrays come from freed memory: no page faults (glibc's thread arenas
    unmap their heaps when they empty, so without one arena each such step faulted ~1800 pages afresh)."""
    from sandbox.core import MALLOC_TUNABLES

    if how == "reuse_freed_memory":
        setup, environment = "from reference.parallel import reuse_freed_memory; assert reuse_freed_memory()", {}
    else:
        setup, environment = "", {"GLIBC_TUNABLES": MALLOC_TUNABLES}
    result = subprocess.run([sys.executable, "-c", _WORKER_ROUNDS.format(setup=setup)], capture_output=True,
                            text=True, timeout=60, check=True, env={**os.environ, **environment})
    first, *later = [int(count) for count in result.stdout.split()]
    assert first > 1000  # the first step does fault its memory in, so the count is the one that matters
    assert later == [0, 0, 0]
