"""Every limit of a job, enforced by the real backends (docker and bwrap): each probe reports what it could do."""

from __future__ import annotations

import json
import os

import pytest

from sandbox.core import job_environment
from sandbox.runner import MiB
from tests.sandbox.helpers import OVERHEAD_ALLOWANCE_S, TEST_LIMITS, probe, reported


def test_empty_job_runs_and_streams_progress(runner):
    lines = []
    outcome = runner.run(probe("x = 1\n"), on_progress=lines.append)
    assert outcome.status == "ok" and outcome.exit_code == 0
    assert [json.loads(line)["event"] for line in lines] == ["start", "imported"]
    result = json.loads(outcome.result)
    assert result["imported"] is True and result["uid"] == 65534 and "x" in result["names"]
    assert outcome.backend == runner.name
    if runner.name == "docker":
        assert outcome.image_digest == runner.image_id and outcome.image_digest.startswith("sha256:")


def test_progress_lines_arrive_while_the_job_runs(runner):
    source = ("import time\n"
              "with open('/job/out/progress.jsonl', 'a') as p:\n"
              "    for i in range(3):\n"
              "        p.write('{\"step\": %d}\\n' % i); p.flush(); time.sleep(0.5)\n"
              "    time.sleep(1.5)\n")
    arrivals = []
    import time as clock

    started = clock.monotonic()
    outcome = runner.run(probe(source), on_progress=lambda line: arrivals.append((clock.monotonic(), line)))
    assert outcome.status == "ok"
    steps = [(when, json.loads(line)) for when, line in arrivals if "step" in line]
    assert [data["step"] for _, data in steps] == [0, 1, 2]
    # The first step was delivered before the job ended, not read back afterwards.
    assert steps[0][0] < started + outcome.duration_s - 1.0


def test_memory_over_the_limit_is_reported_as_memory(runner):
    outcome = runner.run(probe("import numpy\nblock = numpy.ones(80_000_000)\n", memory_bytes=256 * MiB))
    assert outcome.status == "memory"


def test_memory_under_the_limit_is_fine(runner):
    outcome = runner.run(probe("import numpy\nblock = numpy.ones(10_000_000)\nreport({'sum': float(block.sum())})\n"))
    assert reported(outcome) == {"sum": 10_000_000.0}


def test_infinite_loop_is_killed_at_the_wall_clock_limit(runner):
    outcome = runner.run(probe("while True:\n    pass\n", wall_seconds=2.0))
    assert outcome.status == "timeout" and outcome.exit_code is None
    assert 2.0 <= outcome.duration_s < 2.0 + OVERHEAD_ALLOWANCE_S


def test_process_count_is_capped(runner):
    source = ("import os, time\nchildren = 0\n"
              "for _ in range(200):\n"
              "    try:\n        pid = os.fork()\n    except OSError:\n        break\n"
              "    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n"
              "    children += 1\n"
              "report({'children': children})\n")
    result = reported(runner.run(probe(source, pids=16)))
    assert 1 <= result["children"] < 16


def test_result_over_its_cap_is_an_output_limit_and_discarded(runner):
    source = "with open('/job/out/result.bin', 'wb') as f:\n    f.write(b'x' * (3 * 1024 * 1024))\nimport os\nos._exit(0)\n"
    outcome = runner.run(probe(source, output_bytes=1 * MiB))
    assert outcome.status == "output_limit" and outcome.result == b""


def test_progress_over_its_cap_is_an_output_limit(runner):
    source = ("with open('/job/out/progress.jsonl', 'a') as f:\n"
              "    for _ in range(5000):\n        f.write('{\"pad\": \"' + 'y' * 100 + '\"}\\n')\n"
              "import os\nos._exit(0)\n")
    seen = []
    outcome = runner.run(probe(source, progress_bytes=64 * 1024), on_progress=seen.append)
    assert outcome.status == "output_limit"
    assert sum(len(line) + 1 for line in seen) <= 64 * 1024


def test_file_size_is_capped_by_the_fsize_limit(runner):
    source = ("import errno\nwritten = 0\n"
              "try:\n    with open('/job/out/result.bin', 'wb') as f:\n"
              "        for _ in range(40):\n            f.write(b'z' * MiB); written += 1\n"
              "except OSError as error:\n    code = error.errno\nelse:\n    code = 0\n"
              "with open('/tmp/note', 'w') as note:\n    note.write(str(code))\n"
              "import os\nos._exit(0)\n").replace("MiB", str(MiB))
    outcome = runner.run(probe(source, fsize_bytes=4 * MiB, output_bytes=8 * MiB))
    assert outcome.status == "ok" and len(outcome.result) == 4 * MiB


def test_tmp_is_a_small_capped_scratch_space(runner):
    source = ("written = 0\nerror_text = ''\n"
              "try:\n    with open('/tmp/fill', 'wb') as f:\n"
              "        for _ in range(64):\n            f.write(b'q' * 1048576); f.flush(); written += 1\n"
              "except OSError as error:\n    error_text = error.strerror\n"
              "report({'written_mib': written, 'error': error_text})\n")
    result = reported(runner.run(probe(source, tmpfs_bytes=8 * MiB)))
    assert result["written_mib"] <= 8 and result["error"] == "No space left on device"


def test_root_filesystem_and_inputs_are_read_only(runner):
    source = ("import os, numpy\nresults = {}\n"
              "targets = [numpy.__file__, '/opt/harness/smoke.py', '/opt/harness/new.py', '/job/submission/spatial.py',\n"
              "           '/job/inputs/x', '/job/out/extra', '/usr/bin/python3', '/etc/passwd', '/newfile', '/var/tmp/x']\n"
              "for target in targets:\n"
              "    try:\n        with open(target, 'ab'):\n            pass\n        results[target] = 'written'\n"
              "    except OSError as error:\n        results[target] = error.strerror\n"
              "try:\n    os.rename('/job/out/result.bin', '/job/out/moved')\n    results['rename'] = 'renamed'\n"
              "except OSError as error:\n    results['rename'] = error.strerror\n"
              "report(results)\n")
    result = reported(runner.run(probe(source)))
    assert "written" not in result.values() and result["rename"] != "renamed", result


def test_no_network_of_any_kind(runner):
    source = ("import socket, os\nresults = {}\n"
              "for port in (5432, 6379, 2375, 8000):\n"
              "    s = socket.socket()\n    s.settimeout(2)\n"
              "    try:\n        s.connect(('127.0.0.1', port)); results[port] = 'connected'\n"
              "    except OSError as error:\n        results[port] = type(error).__name__\n"
              "try:\n    socket.getaddrinfo('deb.debian.org', 80); results['dns'] = 'resolved'\n"
              "except OSError as error:\n    results['dns'] = type(error).__name__\n"
              "for path in ('/var/run/docker.sock', '/run/postgresql/.s.PGSQL.5432', '/var/run/redis/redis.sock'):\n"
              "    u = socket.socket(socket.AF_UNIX)\n"
              "    try:\n        u.connect(path); results[path] = 'connected'\n"
              "    except OSError as error:\n        results[path] = type(error).__name__\n"
              "results['interfaces'] = sorted(name for _, name in socket.if_nameindex())\n"
              "report(results)\n")
    result = reported(runner.run(probe(source)))
    assert "connected" not in result.values() and result["dns"] != "resolved", result
    assert result["interfaces"] == ["lo"]


def test_unprivileged_without_capabilities(runner):
    source = ("import os\nstatus = open('/proc/self/status').read().splitlines()\n"
              "fields = dict(line.split(':', 1) for line in status)\n"
              "report({'uid': os.getuid(), 'gid': os.getgid(), 'groups': os.getgroups(),\n"
              "        'cap_eff': fields['CapEff'].strip(), 'cap_bnd': fields['CapBnd'].strip(),\n"
              "        'no_new_privs': fields['NoNewPrivs'].strip(), 'seccomp': fields['Seccomp'].strip(),\n"
              "        'oom_score_adj': open('/proc/self/oom_score_adj').read().strip()})\n")
    result = reported(runner.run(probe(source)))
    assert (result["uid"], result["gid"]) == (65534, 65534)
    assert int(result["cap_eff"], 16) == 0 and int(result["cap_bnd"], 16) == 0
    assert result["no_new_privs"] == "1"
    if runner.name == "docker":
        assert result["seccomp"] == "2"  # Docker's default filter is on
    assert result["oom_score_adj"] == "1000"  # host memory pressure kills the job first


def test_host_environment_does_not_leak(runner, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres:hunter2@127.0.0.1/test")
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "do-not-leak")
    result = reported(runner.run(probe("import os\nreport(dict(os.environ))\n")))
    assert "hunter2" not in json.dumps(result) and "do-not-leak" not in json.dumps(result)
    assert set(result) <= set(job_environment(TEST_LIMITS)) | {"HOSTNAME", "LC_CTYPE", "PWD"}
    assert result["OPENBLAS_NUM_THREADS"] == str(TEST_LIMITS.threads)


def test_open_files_are_capped(runner):
    source = ("handles = []\n"
              "try:\n    for _ in range(1000):\n        handles.append(open('/dev/null'))\n"
              "except OSError:\n    pass\nopened = len(handles)\nfor h in handles:\n    h.close()\nreport({'opened': opened})\n")
    assert reported(runner.run(probe(source, nofile=64)))["opened"] < 64


def test_exit_codes_and_signals_are_classified(runner):
    assert runner.run(probe("raise SystemExit(3)\n")).status == "exited"
    crashed = runner.run(probe("import ctypes\nctypes.string_at(0)\n"))
    assert crashed.status == "crashed" and crashed.exit_code == 139
