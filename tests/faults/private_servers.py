"""Private instances of the servers a fault test stops: never the shared Redis, Postgres or Docker engine, which
other checkouts on this machine are using."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of our own on a free port, keeping nothing on disk (a restart loses every message)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir, self.port = workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        redis_server = shutil.which("redis-server")
        assert redis_server, "redis-server is installed by scripts/install_system_packages.sh"
        self.process = subprocess.Popen(
            [redis_server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.1)
        raise AssertionError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()  # as a crash would: nothing is saved
            self.process.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def depth(self, queue: str) -> int:
        return int(redis.Redis.from_url(self.url).llen(queue))


class PrivatePostgres:
    """A PostgreSQL cluster of our own (initdb as the postgres user) on a free port, trust auth, fsync off."""

    def __init__(self) -> None:
        import tempfile

        # Not under pytest's tmp_path: that is private to root, and the server runs as the postgres user.
        self.root = Path(tempfile.mkdtemp(prefix="grader-fault-pg-", dir="/tmp"))
        self.root.chmod(0o755)
        self.data, self.port = self.root / "data", free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/grader"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        import psycopg

        shutil.chown(self.root, "postgres", "postgres")
        self._as_postgres(shutil.which("initdb") or "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync")
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            connection.execute("CREATE DATABASE grader")

    def start(self) -> None:
        self._as_postgres(shutil.which("pg_ctl") or "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"),
                          "-w", "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off",
                          "start")

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres(shutil.which("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateDockerd:
    """A Docker engine of our own: its own socket, data root, exec root, pid file and containerd namespaces, so
    stopping it touches nothing of the shared engine. The sandbox image is built into it from the offline root
    filesystem the shared build left in SANDBOX_DIR (about 15 s)."""

    def __init__(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="grader-fault-docker-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        namespace = self.root.name
        self.process = subprocess.Popen(
            [shutil.which("dockerd") or "dockerd", "--host", self.host, "--data-root", str(self.root / "data"),
             "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
             "--iptables=false", "--ip-masq=false", "--bridge=none", "--containerd-namespace", namespace,
             "--containerd-plugins-namespace", f"{namespace}-plugins"],
            stdout=open(self.root / "dockerd.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if subprocess.run(["docker", "-H", self.host, "version"], capture_output=True).returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"the private dockerd did not start:\n{(self.root / 'dockerd.log').read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
