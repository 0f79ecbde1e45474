"""The pieces every backend shares: outcome classification, the progress tail, the log tail, fault mapping."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sandbox.core import (MEMORY_ERROR_EXIT_CODE, JobEnd, LogTail, ProgressTail, classify, infrastructure_faults,
                          job_environment)
from sandbox.runner import InfrastructureError, SandboxLimits

LIMITS = SandboxLimits(output_bytes=10, progress_bytes=10)


def status(exit_code, *, killed_for=None, oom_killed=False, log_tail="", result_size=0, progress_size=0):
    end = JobEnd(exit_code=exit_code, oom_killed=oom_killed, log_tail=log_tail)
    return classify(killed_for=killed_for, end=end, result_size=result_size, progress_size=progress_size,
                    limits=LIMITS)


def test_classify_orders_causes():
    assert status(None, killed_for="timeout", oom_killed=True) == "timeout"
    assert status(137, oom_killed=True) == "memory"
    assert status(137) == "crashed"
    assert status(139) == "crashed"
    assert status(128 + 25) == "output_limit"  # SIGXFSZ
    assert status(0, result_size=11) == "output_limit"
    assert status(0, progress_size=11) == "output_limit"
    assert status(128 + 24) == "timeout"  # SIGXCPU: the CPU-seconds backstop
    assert status(2) == "exited"
    assert status(0) == "ok"


def test_memory_errors_are_memory_on_every_backend():
    assert status(MEMORY_ERROR_EXIT_CODE) == "memory"
    assert status(1, log_tail="Traceback ...\nMemoryError\n") == "memory"
    assert status(1, log_tail="MemoryError\n" + "x" * 1000) == "exited"  # far from the end: not how it died


def test_the_harnesses_and_the_runner_share_one_memory_exit_code():
    from sandbox.harness import harness_common

    assert MEMORY_ERROR_EXIT_CODE == harness_common.MEMORY_ERROR_EXIT_CODE
    for harness in Path(harness_common.__file__).parent.glob("*.py"):
        if harness.name != "harness_common.py":
            assert "MEMORY_ERROR_EXIT_CODE = " not in harness.read_text(encoding="utf-8"), harness.name


def test_progress_tail_hands_on_complete_lines_up_to_its_cap(tmp_path):
    path = tmp_path / "progress.jsonl"
    path.write_bytes(b"")
    tail = ProgressTail(path, cap_bytes=20)
    with open(path, "ab") as handle:
        handle.write(b'{"a": 1}\n{"b"')
        handle.flush()
        assert tail.read_lines() == ['{"a": 1}']
        handle.write(b': 2}\n\n')
        handle.flush()
        assert tail.read_lines() == ['{"b": 2}']
        assert not tail.over_cap()
        handle.write(b'{"c": 3}\n')
        handle.flush()
    assert tail.over_cap()
    assert tail.read_lines() == []  # the line crossing the cap is never read


def test_log_tail_keeps_the_last_bytes():
    process = subprocess.Popen(["sh", "-c", "yes x | head -c 100000; echo THE-END"], stdout=subprocess.PIPE)
    tail = LogTail(process.stdout, cap_bytes=1000)
    process.wait()
    text = tail.text()
    assert len(text) == 1000 and text.endswith("THE-END\n")


def test_os_errors_on_the_trusted_side_are_infrastructure_faults():
    with pytest.raises(InfrastructureError, match="disk"):
        with infrastructure_faults("preparing the job failed"):
            raise OSError(28, "No space left on device (disk full)")
    with pytest.raises(ValueError):
        with infrastructure_faults("preparing the job failed"):
            raise ValueError("a programming error stays what it is")


def test_environment_names_nothing_of_the_host(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "hunter2")
    environment = job_environment(SandboxLimits(threads=2))
    assert "SECRET_KEY" not in environment and environment["OMP_NUM_THREADS"] == "2"
    assert set(environment) == {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PATH", "HOME",
                                "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE", "OPENBLAS_THREAD_TIMEOUT",
                                "GLIBC_TUNABLES"}
