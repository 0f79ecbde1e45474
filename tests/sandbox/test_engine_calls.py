"""What a Docker job asks the engine (issue 14: every call costs dockerd CPU), how its log stream is read, and the
harnesses' own argument parsing (argparse is not imported inside the sandbox)."""

from __future__ import annotations

import collections
import re
import sys
from dataclasses import replace

import pytest
import requests
from docker.transport.unixconn import UnixHTTPConnection

from sandbox.docker_backend import demultiplex
from sandbox.harness import harness_common
from tests.sandbox.helpers import probe


def test_log_stream_frames_are_joined_in_order():
    def frame(stream: int, payload: bytes) -> bytes:
        return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload

    assert demultiplex(frame(1, b"out 1\n") + frame(2, b"err\n") + frame(1, b"")) == b"out 1\nerr\n"
    assert demultiplex(b"") == b""


@pytest.mark.docker
@pytest.mark.parametrize(("source", "inspects"), [("x = 1\n", 0), ("raise SystemExit(3)\n", 1)])
def test_a_job_makes_five_engine_calls_and_inspects_only_a_failed_one(docker_only_runner, monkeypatch, source,
                                                                      inspects):
    calls: collections.Counter[str] = collections.Counter()
    send = requests.Session.send

    def counting(session, request, **kwargs):
        path = re.sub(r"/v[0-9.]+/", "/", request.url.split("?")[0])
        calls[f"{request.method} {re.sub(r'[0-9a-f]{64}', 'ID', path).rsplit('/containers', 1)[-1]}"] += 1
        return send(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", counting)
    outcome = docker_only_runner.run(probe(source))
    assert outcome.status == ("ok" if inspects == 0 else "exited")
    assert calls == {"POST /create": 1, "POST /ID/start": 1, "POST /ID/wait": 1, "GET /ID/logs": 1,
                     "DELETE /ID": 1, **({"GET /ID/json": 1} if inspects else {})}


@pytest.mark.docker
@pytest.mark.parametrize(("source", "status"), [("print('passing job output')\n", "ok"),
                                                ("print('failing job output'); raise SystemExit(3)\n", "exited")])
def test_a_job_whose_passing_log_nobody_reads_fetches_only_a_failed_ones_log(docker_only_runner, monkeypatch, source,
                                                                             status):
    fetched = []
    send = requests.Session.send

    def recording(session, request, **kwargs):
        fetched.extend([request.url] if "/logs" in request.url else [])
        return send(session, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", recording)
    outcome = docker_only_runner.run(replace(probe(source), log_tail_when_ok=False))
    assert outcome.status == status
    if status == "ok":
        assert (fetched, outcome.log_tail) == ([], "")
    else:
        assert len(fetched) == 1 and "failing job output" in outcome.log_tail


@pytest.mark.docker
def test_jobs_reuse_their_connections_to_the_engine(docker_only_runner, monkeypatch):
    if not docker_only_runner.client.api.base_url.startswith("http+docker://"):
        pytest.skip("the engine is not reached through a Unix socket")
    docker_only_runner.run(probe("x = 1\n"))  # the calling thread's and the wait thread's connections
    opened = []
    connect = UnixHTTPConnection.connect

    def counting(connection):
        opened.append(connection)
        return connect(connection)

    monkeypatch.setattr(UnixHTTPConnection, "connect", counting)
    for source in ("x = 1\n", "raise SystemExit(3)\n"):
        docker_only_runner.run(probe(source))
    assert opened == []


def test_harness_arguments_first_value_wins_and_the_kit_goes_on_the_path(monkeypatch):
    argv = ["harness.py", "--kit", "/opt/kit", "--submission", "/s.py", "--inputs", "/in", "--data", "/d",
            "--out", "/out", "--epochs", "3", "--out", "/elsewhere"]
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(sys, "path", list(sys.path))
    args = harness_common.parse_harness_args()
    assert (args.kit, args.submission, args.inputs, args.data, args.out) == ("/opt/kit", "/s.py", "/in", "/d", "/out")
    assert sys.path[0] == "/opt/kit"


def test_a_missing_harness_argument_ends_the_harness_with_code_2(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["harness.py", "--kit", "/opt/kit", "--out"])
    with pytest.raises(SystemExit) as ended:
        harness_common.parse_harness_args()
    assert ended.value.code == 2
    assert "--submission" in capsys.readouterr().err
