"""Hostile submissions against the real sandboxes, one per attack: each must end by itself within its limit plus a
small overhead, come back with the expected outcome, and leave nothing behind (no container, no job directory,
no process, no file the next job could find). Score-level attacks (forged results, lying arrays) are in
test_attacks_scoring.py; these run under the smoke harness, which only imports the submission.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import replace

import pytest

from sandbox.jobdir import SHARED_MIN_BYTES
from tests.sandbox.helpers import OVERHEAD_ALLOWANCE_S, TEST_LIMITS, host_processes_with, probe, reported

WALL = TEST_LIMITS.wall_seconds


def assert_ends_in_time(outcome, wall: float = WALL) -> None:
    assert outcome.duration_s < wall + OVERHEAD_ALLOWANCE_S, outcome.duration_s


def test_fork_bomb_is_contained(runner):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    source = (f"import os, sys\nsys.argv[0] = '{marker}'\n"
              "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    outcome = runner.run(probe(source, wall_seconds=4.0))
    assert outcome.status == "timeout"
    assert_ends_in_time(outcome, 4.0)
    assert host_processes_with(marker) == []
    assert runner.run(probe("report({'after': 1})\n")).status == "ok"  # the next job starts normally


def test_memory_hog_is_killed_as_memory(runner):
    source = "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))\n"
    outcome = runner.run(probe(source))
    assert outcome.status == "memory"
    assert_ends_in_time(outcome)


def test_infinite_loop_times_out(runner):
    outcome = runner.run(probe("while True:\n    pass\n", wall_seconds=3.0))
    assert outcome.status == "timeout" and outcome.exit_code is None
    assert_ends_in_time(outcome, 3.0)


def test_huge_stdout_and_stderr_are_not_kept(runner):
    source = ("import sys\nblock = 'A' * (1024 * 1024)\n"
              "for _ in range(48):\n    sys.stdout.write(block)\n    sys.stderr.write(block)\n"
              "sys.stdout.flush()\nreport({'printed_mib': 96})\n")
    outcome = runner.run(probe(source))
    assert outcome.status == "ok"
    assert len(outcome.log_tail.encode()) <= TEST_LIMITS.log_tail_bytes
    assert_ends_in_time(outcome)


def test_filling_tmp_stops_at_its_cap(runner):
    source = ("n = 0\ntry:\n    while True:\n        open(f'/tmp/f{n}', 'wb').write(b'0' * 1048576); n += 1\n"
              "except OSError as error:\n    report({'files': n, 'errno': error.errno})\n")
    result = reported(runner.run(probe(source, tmpfs_bytes=8 * 1024 * 1024)))
    assert result["files"] <= 8 and result["errno"] == 28  # ENOSPC


def test_segfault_is_a_crash(runner):
    outcome = runner.run(probe("import ctypes\nctypes.memset(0, 1, 1)\n"))
    assert outcome.status == "crashed" and outcome.exit_code == 139
    assert_ends_in_time(outcome)


@pytest.mark.parametrize("exit_call", ["import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"])
def test_exiting_before_the_checks_returns_no_result(runner, exit_call):
    outcome = runner.run(probe(exit_call))
    assert outcome.status == "ok" and outcome.result == b""


def test_killing_its_parent_and_everything_it_can_see(runner):
    source = ("import os, signal\n"
              "for target in (os.getppid(), 1):\n"
              "    try:\n        os.kill(target, signal.SIGKILL)\n    except OSError:\n        pass\n"
              "os.kill(-1, signal.SIGKILL)\n")
    outcome = runner.run(probe(source))
    assert outcome.status in ("crashed", "exited")
    assert_ends_in_time(outcome)
    assert os.getppid() > 1  # the grader (this test process) is untouched


def test_network_database_broker_docker_socket_and_dns_are_unreachable(runner):
    source = ("import socket\nresults = {}\n"
              "for port in (5432, 6379, 2375, 2376, 8000, 22):\n"
              "    s = socket.socket()\n    s.settimeout(2)\n"
              "    try:\n        s.connect(('127.0.0.1', port)); results[str(port)] = 'connected'\n"
              "    except OSError as error:\n        results[str(port)] = str(error)\n"
              "for host in ('deb.debian.org', 'pypi.org', 'localhost'):\n"
              "    try:\n        socket.getaddrinfo(host, 443); results[host] = 'resolved'\n"
              "    except OSError as error:\n        results[host] = str(error)\n"
              "for path in ('/var/run/docker.sock', '/run/docker.sock', '/var/run/postgresql/.s.PGSQL.5432',\n"
              "             '/run/redis/redis-server.sock'):\n"
              "    u = socket.socket(socket.AF_UNIX)\n"
              "    try:\n        u.connect(path); results[path] = 'connected'\n"
              "    except OSError as error:\n        results[path] = str(error)\n"
              "u = socket.socket(socket.AF_UNIX)\n"
              "try:\n    u.connect('\\0/containerd-shim'); results['abstract'] = 'connected'\n"
              "except OSError as error:\n    results['abstract'] = str(error)\n"
              "report(results)\n")
    result = reported(runner.run(probe(source)))
    reached = {key: value for key, value in result.items() if value in ("connected",)}
    assert reached == {}, result
    assert result["deb.debian.org"] != "resolved" and result["pypi.org"] != "resolved"


def test_environment_holds_no_secrets(runner, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s3cret-signing-key")
    monkeypatch.setenv("BROKER_URL", "redis://:pw@127.0.0.1:6379/0")
    source = ("import os\nseen = dict(os.environ)\n"
              "for pid in ('self', '1'):\n"
              "    try:\n        seen[pid] = open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace')\n"
              "    except OSError as error:\n        seen[pid] = str(error)\n"
              "report(seen)\n")
    text = json.dumps(reported(runner.run(probe(source))))
    for secret in ("s3cret-signing-key", "redis://", "postgresql://", "DATABASE_URL", "SECRET_KEY"):
        assert secret not in text


def test_grader_reference_and_test_labels_are_not_inside(runner):
    source = ("import importlib, os\nfound = {}\n"
              "for name in ('grader', 'grader.settings', 'reference', 'reference.layers_fast', 'api', 'sandbox'):\n"
              "    try:\n        importlib.import_module(name); found[name] = 'imported'\n"
              "    except ImportError:\n        pass\n"
              "suspicious = ('layers_fast', 'layers_loop', 'simple_cnn', 'grader', 'cifar', 'test_batch', 'labels',\n"
              "              'expected', 'spec')\n"
              "for root, dirs, files in os.walk('/'):\n"
              "    if root.startswith(('/proc', '/sys', '/dev')):\n        dirs[:] = []\n        continue\n"
              "    for entry in dirs + files:\n"
              "        if any(word in entry.lower() for word in suspicious) and 'numpy' not in root \\\n"
              "                and not root.startswith(('/usr/lib/python3', '/usr/share', '/usr/lib/x86_64')):\n"
              "            found[os.path.join(root, entry)] = 'present'\n"
              "found['/work'] = os.path.exists('/work')\n"
              "report(found)\n")
    result = reported(runner.run(probe(source, wall_seconds=30.0)))
    assert result.pop("/work") is False
    assert result == {}, result


def test_writing_numpy_harness_kit_or_outside_tmp_fails(runner):
    source = ("import os, numpy\nresults = {}\n"
              "targets = [os.path.join(os.path.dirname(numpy.__file__), '_core', 'numeric.py'), numpy.__file__,\n"
              "           '/opt/harness/correctness.py', '/opt/harness/smoke.py', '/opt/kit/evil.py',\n"
              "           '/job/submission/spatial.py', '/job/out/forged.bin', '/home/x', '/root/x', '/etc/x',\n"
              "           '/usr/lib/python3.11/site.py', '/usr/lib/python3.11/sitecustomize.py']\n"
              "for target in targets:\n"
              "    try:\n        open(target, 'ab').close(); results[target] = 'written'\n"
              "    except OSError as error:\n        results[target] = error.strerror\n"
              "report(results)\n")
    result = reported(runner.run(probe(source)))
    assert "written" not in result.values(), result


def test_leftover_marker_and_background_process_are_gone_for_the_next_job(runner):
    marker = f"leftover-{uuid.uuid4().hex}"
    first = ("import os, subprocess, time\n"
             f"open('/tmp/{marker}', 'w').write('was here')\n"
             "if os.fork() == 0:\n    os.setsid()\n"
             "    if os.fork() == 0:\n"
             f"        os.execv('/usr/bin/python3', ['python3', '-c', 'import time; time.sleep(300)', '{marker}'])\n"
             "    os._exit(0)\n"
             "time.sleep(0.5)\nreport({'spawned': True})\n")
    assert reported(runner.run(probe(first))) == {"spawned": True}
    assert host_processes_with(marker) == []
    second = ("import os\nprocesses = []\n"
              "for pid in os.listdir('/proc'):\n"
              "    if pid.isdigit():\n"
              "        try:\n            processes.append(open(f'/proc/{pid}/cmdline', 'rb').read().decode(errors='replace'))\n"
              "        except OSError:\n            pass\n"
              f"report({{'marker': os.path.exists('/tmp/{marker}'), 'tmp': os.listdir('/tmp'),\n"
              f"         'sleeper': any('{marker}' in p for p in processes)}})\n")
    result = reported(runner.run(probe(second)))
    assert result == {"marker": False, "tmp": [], "sleeper": False}


def test_printed_fake_result_is_not_the_result(runner):
    source = ("import sys\nprint('{\"score\": 100, \"status\": \"passed\"}')\n"
              "sys.stderr.write('RESULT: all tests passed\\n')\n")
    outcome = runner.run(probe(source))
    assert outcome.status == "ok"
    assert b"score" not in outcome.result and json.loads(outcome.result)["imported"] is True


def test_concurrent_jobs_cannot_see_each_other(runner):
    from concurrent.futures import ThreadPoolExecutor

    marker = f"neighbour-{uuid.uuid4().hex}"
    writer = (f"import time\nopen('/tmp/{marker}', 'w').write('secret answer')\n"
              "time.sleep(3)\nreport({'wrote': True})\n")
    reader = ("import os, time\ntime.sleep(1)\nseen = []\n"
              "for pid in os.listdir('/proc'):\n"
              "    if pid.isdigit():\n"
              "        try:\n            seen.append(open(f'/proc/{pid}/cmdline', 'rb').read().decode(errors='replace'))\n"
              "        except OSError:\n            pass\n"
              f"report({{'tmp': os.listdir('/tmp'), 'processes': len(seen)}})\n")
    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(runner.run, probe(writer))
        second = pool.submit(runner.run, probe(reader))
        assert reported(first.result()) == {"wrote": True}
        neighbour = reported(second.result())
    assert neighbour["tmp"] == []
    assert neighbour["processes"] <= 3  # its own init, harness and nothing of the other job


def test_a_large_input_cannot_be_changed_for_the_next_job(runner):
    """Large inputs are links to one copy shared by every Docker job of the worker (sandbox/jobdir.py): a job that
    could write, chmod, rename or delete its own would change the inputs of every job after it."""
    big = os.urandom(SHARED_MIN_BYTES + 1)
    attack = ("import os\nresults = {}\npath = '/job/inputs/big.bin'\n"
              "attempts = {'write': lambda: open(path, 'r+b').write(b'x'), 'chmod': lambda: os.chmod(path, 0o666),\n"
              "            'rename': lambda: os.rename(path, '/job/inputs/moved'), 'unlink': lambda: os.unlink(path),\n"
              "            'truncate': lambda: os.truncate(path, 0), 'utime': lambda: os.utime(path, (0, 0)),\n"
              "            'link': lambda: os.link(path, '/tmp/big.bin')}\n"
              "for name, attempt in attempts.items():\n"
              "    try:\n        attempt(); results[name] = 'done'\n"
              "    except OSError as error:\n        results[name] = error.strerror\n"
              "try:\n    open('/tmp/big.bin', 'r+b').write(b'x'); results['write link'] = 'done'\n"
              "except OSError as error:\n    results['write link'] = error.strerror\n"
              "report(results)\n")
    result = reported(runner.run(replace(probe(attack), inputs={"big.bin": big})))
    assert "done" not in result.values(), result
    check = ("import hashlib\n"
             "report({'sha256': hashlib.sha256(open('/job/inputs/big.bin', 'rb').read()).hexdigest()})\n")
    after = reported(runner.run(replace(probe(check), inputs={"big.bin": big})))
    assert after == {"sha256": hashlib.sha256(big).hexdigest()}
