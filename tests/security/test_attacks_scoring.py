"""Hostile submissions graded end to end (correctness stage, real Docker and bwrap sandboxes): a forgery earns nothing, a failed
probe costs nothing, and the score is exactly what the honest part of the file earns.

Each attack is the course's correct vectorized file with AvgPool2D broken honestly (it raises), plus the attack
code. The honest part therefore earns `honest_score`: everything but the AvgPool2D checks.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from grader.pipeline import grade_submission
from grader.settings import get_settings
from tests.sandbox.helpers import OVERHEAD_ALLOWANCE_S, leftover_containers

GOOD = (Path(__file__).resolve().parents[1] / "fixtures" / "submissions" / "good_vectorized.py").read_text()
BROKEN_AVGPOOL = '''

def _not_done(self, x):
    raise NotImplementedError("AvgPool2D.forward is left for later")


AvgPool2D.forward = _not_done
'''
HONEST = GOOD + BROKEN_AVGPOOL


def grade(source: str, runner):
    started = time.monotonic()
    result = grade_submission(source.encode(), stages=["correctness"], runner=runner)
    return result, time.monotonic() - started


def passed_checks(result) -> set[str]:
    return {test.name for test in result.tests if test.status == "passed"}


def passed_components(result) -> set[str]:
    return {test.name.split(".")[0] for test in result.tests if test.status == "passed"}


_honest_results: dict[str, object] = {}


@pytest.fixture
def honest(runner):
    """The honest file's result on this backend (graded once per backend)."""
    if runner.name not in _honest_results:
        result, _ = grade(HONEST, runner)
        assert 0 < result.score < result.max_score
        assert "avgpool2d" not in passed_components(result) and "conv2d" in passed_components(result)
        _honest_results[runner.name] = result
    return _honest_results[runner.name]


def wall_limit() -> float:
    from grader.spec import load_spec

    return float(load_spec().stages["correctness"].get("limits", {}).get("wall_seconds",
                                                                         get_settings().correctness_wall_seconds))


def assert_same_score(result, honest) -> None:
    assert result.score == honest.score, (result.score, honest.score, result.message)
    assert passed_checks(result) == passed_checks(honest)


def test_correct_file_earns_everything(runner):
    result, seconds = grade(GOOD, runner)
    assert result.status == "graded" and result.score == result.max_score
    assert seconds < wall_limit() + OVERHEAD_ALLOWANCE_S


def test_monkeypatched_numpy_comparisons_change_nothing(runner, honest):
    attack = HONEST + '''
import numpy
import numpy.testing
_always = lambda *args, **kwargs: True
for _name in ("allclose", "array_equal", "array_equiv", "isclose"):
    setattr(numpy, _name, _always)
numpy.testing.assert_allclose = lambda *args, **kwargs: None
numpy.testing.assert_array_equal = lambda *args, **kwargs: None
'''
    result, _ = grade(attack, runner)
    assert_same_score(result, honest)


def test_lying_ndarray_subclass_earns_nothing(runner, honest):
    attack = HONEST + '''
import numpy as _np


class _Liar(_np.ndarray):
    def __eq__(self, other):
        return True

    __ne__ = lambda self, other: False

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return True

    def __array__(self, dtype=None, copy=None):
        return _np.zeros(self.shape, dtype=dtype or float)

    def astype(self, *args, **kwargs):
        return self

    def tolist(self):
        return [0.0]


def _lying_forward(self, x):
    data = getattr(x, "data", x)
    n, c, h, w = data.shape
    liar = _np.zeros((n, c, h // 2, w // 2)).view(_Liar)
    return type(x)(liar, requires_grad=True) if hasattr(x, "requires_grad") else liar


AvgPool2D.forward = _lying_forward
'''
    result, _ = grade(attack, runner)
    assert "avgpool2d" not in passed_components(result)
    assert result.score == honest.score, (result.score, honest.score)


def test_printed_fake_result_earns_nothing(runner, honest):
    attack = HONEST + '''
import sys
print('{"score": 61.5, "max_score": 61.5, "status": "graded", "tests": []}')
sys.stderr.write("ALL CHECKS PASSED\\n")
'''
    result, _ = grade(attack, runner)
    assert_same_score(result, honest)


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"])
def test_forged_result_file_then_exit_earns_nothing(runner, exit_call):
    attack = GOOD + '''
import io, json, numpy
_claim = {"format": 1, "status": "ok", "score": 61.5, "passed": True, "runs": {}, "import": {"status": "ok"}}
_buffer = io.BytesIO()
numpy.savez(_buffer, **{"record.json": numpy.frombuffer(json.dumps(_claim).encode(), dtype=numpy.uint8)})
with open("/job/out/result.bin", "wb") as _out:
    _out.write(_buffer.getvalue())
''' + exit_call
    result, seconds = grade(attack, runner)
    assert result.score == 0 and result.status == "error", (result.score, result.status)
    assert result.message
    assert seconds < wall_limit() + OVERHEAD_ALLOWANCE_S


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"])
def test_exiting_before_the_checks_scores_zero_with_a_message(runner, exit_call):
    result, _ = grade(exit_call + GOOD, runner)
    assert result.score == 0 and result.status == "error"
    assert result.message


def test_failed_probes_cost_no_points(runner, honest):
    attack = '''
import os, socket
_loot = {}
for _port in (5432, 6379, 2375):
    try:
        socket.create_connection(("127.0.0.1", _port), timeout=1)
        _loot[_port] = "open"
    except OSError:
        pass
try:
    socket.getaddrinfo("example.com", 80)
except OSError:
    pass
for _path in ("/proc/1/environ", "/var/run/docker.sock", "/work/main/grader/settings.py"):
    try:
        open(_path, "rb").read()
    except OSError:
        pass
for _target in ("/opt/harness/correctness.py", "/usr/local/lib/python3.11/dist-packages/numpy/__init__.py"):
    try:
        open(_target, "a").write("# owned")
    except OSError:
        pass
for _module in ("grader", "reference.layers_fast", "torch"):
    try:
        __import__(_module)
    except ImportError:
        pass
_secrets = {key: value for key, value in os.environ.items() if "KEY" in key or "URL" in key}
''' + HONEST
    result, _ = grade(attack, runner)
    assert_same_score(result, honest)


def test_killing_its_parent_at_import_changes_nothing(runner, honest):
    attack = "import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGKILL)\nexcept OSError:\n    pass\n" + HONEST
    result, _ = grade(attack, runner)
    assert_same_score(result, honest)


def test_importing_the_grader_fails_with_a_message(runner):
    result, _ = grade("from reference.layers_fast import conv2d_forward\n" + GOOD, runner)
    assert result.score == 0 and result.status == "error"
    assert "reference" in result.message


def test_infinite_loop_in_forward_costs_only_that_component(runner, honest):
    attack = GOOD + '''

def _spin(self, x):
    while True:
        pass


AvgPool2D.forward = _spin
'''
    result, seconds = grade(attack, runner)
    assert seconds < wall_limit() + OVERHEAD_ALLOWANCE_S
    assert "avgpool2d" not in passed_components(result)
    if result.status == "graded":
        assert_same_score(result, honest)
    else:  # the whole job hit its wall-clock limit: what finished before still counts, nothing more
        assert result.score <= honest.score


def test_nothing_left_after_scoring_attacks(runner):
    assert leftover_containers(runner) == []


def test_huge_printing_and_a_full_tmp_change_nothing(runner, honest):
    attack = '''
import sys
_n = 0
try:
    while True:
        open(f"/tmp/fill{_n}", "wb").write(b"0" * (1 << 20))
        _n += 1
except OSError:
    pass
for _ in range(64):
    sys.stdout.write("spam " * 200000)
    sys.stderr.write("spam " * 200000)
''' + HONEST
    result, _ = grade(attack, runner)
    assert_same_score(result, honest)


@pytest.mark.parametrize("crash", [
    "import ctypes\n    ctypes.string_at(0)\n",
    "hoard = []\n    while True:\n        hoard.append(b'x' * (64 << 20))\n",
])
def test_crash_in_forward_keeps_what_finished_before(runner, honest, crash):
    attack = GOOD + f'''

def _crash(self, x):
    {crash}

AvgPool2D.forward = _crash
'''
    result, seconds = grade(attack, runner)
    assert seconds < wall_limit() + OVERHEAD_ALLOWANCE_S
    assert "avgpool2d" not in passed_components(result)
    assert {"conv2d", "maxpool2d"} <= passed_components(result)  # finished before the crash: still counted
    if result.status == "graded":  # the harness survived (e.g. MemoryError caught per run)
        assert_same_score(result, honest)
    else:
        assert result.status == "error" and result.message and result.score <= honest.score


def test_fork_bomb_at_import_ends_within_the_limit(runner, honest):
    attack = '''
import os
if os.fork() == 0:
    while True:
        try:
            os.fork()
        except OSError:
            pass
''' + HONEST
    result, seconds = grade(attack, runner)
    assert seconds < wall_limit() + OVERHEAD_ALLOWANCE_S
    assert result.score <= honest.score
