"""`make test`'s servers on a plain Debian machine: scripts/ensure_services.sh installs PostgreSQL and Redis from
Debian and starts them on 127.0.0.1 without systemd (trust for user postgres over loopback, database `test`).

The machine (tests/fixtures/cleanroom.py) runs the script in a network namespace of its own, so its 127.0.0.1 is
empty (the host's servers would otherwise answer and be used, as they should) and its servers never collide with
the host's. That namespace has no internet, so the .deb files are fetched beforehand with `apt-get install
--download-only` on the host's network; the script then runs unchanged: its `apt-get update` fails quietly and
`apt-get install` takes the packages from apt's cache.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from grader.settings import PROJECT_ROOT
from tests.fixtures.cleanroom import Cleanroom, base_rootfs, server_binaries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

CHECKS = r"""
set -u
scripts/ensure_services.sh servers
echo "ensure-services-exit=$?"
echo "select=$(psql -h 127.0.0.1 -U postgres -d test -tAc 'SELECT 41 + 1')"
echo "redis=$(redis-cli -h 127.0.0.1 -p 6379 ping)"
echo "listening=$(python3 -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 2); print("pg")')"
scripts/ensure_services.sh servers
echo "second-run-exit=$?"
"""


def _run(room: Cleanroom, command: str, log_path, *, own_network: bool, seconds: float) -> int:
    process = room.start(command, log_path, own_network=own_network)
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"timed out:\n{log_path.read_text(errors='replace')[-4000:]}") from None


def test_ensure_services_installs_and_starts_postgres_and_redis_without_systemd():
    base = base_rootfs()
    assert server_binaries(base) == []
    room = Cleanroom.fresh(base)
    subprocess.run(["git", "-C", str(PROJECT_ROOT), "bundle", "create",
                    str(room.shared / "source.bundle"), "HEAD"], check=True, capture_output=True)
    log_path = room.workdir / "services.log"
    try:
        fetched = _run(room, f"cd {room.shared} && git -c advice.detachedHead=false clone -q source.bundle repo && "
                             "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -qq -y "
                             "--download-only postgresql redis-server >/dev/null",
                       log_path, own_network=False, seconds=600)
        assert fetched == 0, log_path.read_text(errors="replace")[-4000:]
        assert server_binaries(room.upper) == [], "nothing may be installed before the script runs"
        _run(room, f"cd {room.shared}/repo && {CHECKS}", log_path, own_network=True, seconds=600)
        text = log_path.read_text(errors="replace")
        assert "installing Debian packages: postgresql redis-server" in text, text[-4000:]
        assert "starting PostgreSQL" in text and "starting Redis" in text, text[-4000:]
        assert "ensure-services-exit=0" in text and "second-run-exit=0" in text, text[-4000:]
        assert "select=42" in text and "redis=PONG" in text and "listening=pg" in text, text[-4000:]
        second_run = text.split("ensure-services-exit=0", 1)[1]
        assert "starting" not in second_run and "installing" not in second_run  # running servers are used as they are
        assert re.search(r"usr/lib/postgresql", " ".join(server_binaries(room.upper)))
    finally:
        room.stop()
        leftovers = room.processes()
        room.remove()
    assert leftovers == [], f"processes left in the clean machine: {leftovers}"
