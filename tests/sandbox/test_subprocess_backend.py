"""The UNSAFE subprocess runner: limits, status mapping, caps, empty environment, progress, clean-up."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from sandbox.core import job_environment
from sandbox.runner import HARNESS_DIR, HARNESS_LAUNCHER, MiB, SandboxJob, SandboxLimits
from sandbox.subprocess_backend import SubprocessRunner

PREAMBLE = """
import argparse, os, sys
parser = argparse.ArgumentParser()
for name in ("--kit", "--submission", "--inputs", "--data", "--out"):
    parser.add_argument(name)
args, _ = parser.parse_known_args()
sys.path.insert(0, args.kit)
"""

HARNESSES = {
    "ok": "open(os.path.join(args.out, 'result.bin'), 'wb').write(open(args.submission, 'rb').read())\n",
    "loop": "while True:\n    pass\n",
    "sleep_child": "import subprocess\nsubprocess.Popen(['sleep', '1000'])\nimport time\ntime.sleep(1000)\n",
    "memory": "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))\n",
    "exit3": "sys.exit(7)\n",
    "segfault": "import ctypes\nctypes.string_at(0)\n",
    "env": "open(os.path.join(args.out, 'result.bin'), 'w').write(repr(sorted(os.environ)))\n",
    "imports": ("import numpy, tinytorch\nok = []\nfor name in ('grader', 'reference'):\n"
                "    try:\n        __import__(name)\n        ok.append(name)\n    except ImportError:\n        pass\n"
                "open(os.path.join(args.out, 'result.bin'), 'w').write(repr(ok))\n"),
    "big_result": "open(os.path.join(args.out, 'result.bin'), 'wb').write(b'x' * (3 * 1024 * 1024))\n",
    "progress": ("import time\nwith open(os.path.join(args.out, 'progress.jsonl'), 'a') as f:\n"
                 "    for i in range(3):\n        f.write('{\"i\": %d}\\n' % i); f.flush(); time.sleep(0.05)\n"),
    "noisy": "for _ in range(200000):\n    print('x' * 100)\nprint('THE END')\n",
    "where": "open(os.path.join(args.out, 'result.bin'), 'w').write(os.getcwd())\n",
}


@pytest.fixture(scope="module")
def harness_runner(tmp_path_factory):
    directory = tmp_path_factory.mktemp("harnesses")
    for name, body in HARNESSES.items():
        (directory / f"{name}.py").write_text(PREAMBLE + body)
    for name in (HARNESS_LAUNCHER, "harness_common.py"):  # every harness folder starts its harnesses the same way
        shutil.copy(HARNESS_DIR / name, directory / name)
    return SubprocessRunner(harness_dir=directory)


def job(name: str, **limits) -> SandboxJob:
    return SandboxJob(harness=name, submission=b"hello", limits=SandboxLimits(**{"wall_seconds": 10.0, **limits}))


def test_ok_and_result_bytes(harness_runner):
    outcome = harness_runner.run(job("ok"))
    assert (outcome.status, outcome.exit_code, outcome.result) == ("ok", 0, b"hello")
    assert outcome.backend == "unsafe-subprocess"


def test_wall_clock_timeout_kills_the_whole_group(harness_runner):
    started = time.monotonic()
    outcome = harness_runner.run(job("sleep_child", wall_seconds=1.0))
    assert outcome.status == "timeout" and outcome.exit_code is None
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    assert "sleep 1000" not in os.popen("ps -eo args").read()


def test_cpu_loop_times_out(harness_runner):
    assert harness_runner.run(job("loop", wall_seconds=1.0)).status == "timeout"


def test_memory_limit(harness_runner):
    outcome = harness_runner.run(job("memory", memory_bytes=512 * MiB))
    assert outcome.status == "memory"


def test_nonzero_exit_and_crash(harness_runner):
    exited = harness_runner.run(job("exit3"))
    assert (exited.status, exited.exit_code) == ("exited", 7)
    assert harness_runner.run(job("segfault")).status == "crashed"


def test_environment_is_the_jobs_own(harness_runner, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://secret")
    monkeypatch.setenv("SECRET_KEY", "hunter2")
    names = harness_runner.run(job("env")).result.decode()
    assert names == repr(sorted(job_environment(SandboxLimits())))


def test_only_stdlib_numpy_and_kit_are_importable(harness_runner):
    assert harness_runner.run(job("imports")).result == b"[]"


def test_result_over_its_cap_is_discarded(harness_runner):
    outcome = harness_runner.run(job("big_result", output_bytes=1 * MiB))
    assert outcome.status == "output_limit" and outcome.result == b""


def test_progress_lines_are_delivered(harness_runner):
    lines: list[str] = []
    outcome = harness_runner.run(job("progress"), on_progress=lines.append)
    assert outcome.status == "ok"
    assert lines == ['{"i": 0}', '{"i": 1}', '{"i": 2}']


def test_log_tail_is_capped(harness_runner):
    outcome = harness_runner.run(job("noisy"))
    assert outcome.status == "ok"
    assert len(outcome.log_tail) <= SandboxLimits().log_tail_bytes and "THE END" in outcome.log_tail


def test_job_directory_is_removed(harness_runner):
    outcome = harness_runner.run(job("where"))
    assert not Path(outcome.result.decode()).exists()
