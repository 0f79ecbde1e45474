"""Fault test: Postgres restarted in the middle of a burst of uploads. Uploads during the outage get 503 with
Retry-After (nothing half-stored), `grader submit` waits and retries by itself, and every accepted upload is graded
exactly once with no score from the fault.

The Postgres here is a private cluster (initdb as the postgres user, its own port; tests/faults/private_servers.py):
the shared server on 5432 serves every other checkout on this machine and is never stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
from sqlalchemy import func, select

from grader.settings import PROJECT_ROOT
from grader.store.db import session_scope
from grader.store.models import GradingRun, RunEvent, Submission
from tests.factories import good_source, make_world
from tests.service_fixtures import WorkerProcess, apply_environment, wait_for
from tests.faults.private_servers import PrivatePostgres, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RAW_UPLOADS = 16
CLI_UPLOADS = 4
OUTAGE_SECONDS = 12.0


@pytest.fixture
def private_store(service_env, tmp_path):
    from grader.store.migrate import upgrade_head

    server = PrivatePostgres()
    server.init()
    env = {**service_env, "DATABASE_URL": server.url, "DATA_DIR": str(tmp_path / "data")}
    try:
        upgrade_head(server.url)
        apply_environment(env)
        yield server, env
    finally:
        apply_environment(service_env)
        server.destroy()


def _start_api(env: dict[str, str], log_path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--port",
                                str(port), "--log-level", "warning"], cwd=PROJECT_ROOT, env={**os.environ, **env},
                               stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 60, "the API to start")
    return process, base


def _upload_until_accepted(base: str, slug: str, token: str, source: bytes, answers: list) -> None:
    """What a well-behaved client does: on 503 it waits for Retry-After and sends the file again."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        response = httpx.post(f"{base}/api/v1/assignments/{slug}/submissions", timeout=60,
                              headers={"Authorization": f"Bearer {token}"}, files={"file": ("spatial.py", source)})
        answers.append((response.status_code, response.headers.get("Retry-After")))
        if response.status_code == 202:
            return
        assert response.status_code == 503, response.text
        time.sleep(min(5.0, float(response.headers["Retry-After"])))
    raise AssertionError("an upload was never accepted")


def test_postgres_restarted_mid_burst(private_store, tmp_path):
    server, env = private_store
    world = make_world()
    api, base = _start_api(env, tmp_path / "api.log")
    worker = WorkerProcess(env, tmp_path / "worker.log", queues="correctness", name="store-fault")
    answers: list[tuple[int, str | None]] = []
    cli: list[subprocess.Popen] = []
    try:
        worker.wait_ready()
        tokens = [world.alice_token, world.bob_token]
        threads = [threading.Thread(target=_upload_until_accepted, args=(
            base, world.assignment, tokens[i % 2], good_source(f"burst {i}"), answers)) for i in range(RAW_UPLOADS)]
        for index, thread in enumerate(threads):
            thread.start()
            if index == RAW_UPLOADS // 3:
                server.stop()  # mid-burst: the rest of the uploads meet the outage
                stopped = time.monotonic()
                for i in range(CLI_UPLOADS):
                    path = tmp_path / f"cli-{i}" / "spatial.py"
                    path.parent.mkdir()
                    path.write_bytes(good_source(f"cli {i}"))
                    cli.append(subprocess.Popen(
                        [sys.executable, "-m", "grader.cli", "submit", str(path), "--assignment", world.assignment,
                         "--server", base, "--token", tokens[i % 2], "--timeout", "300"], cwd=PROJECT_ROOT,
                        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
            time.sleep(0.3)
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        server.start()
        for thread in threads:
            thread.join(240)
        outputs = [process.communicate(timeout=360) for process in cli]
        codes = [process.returncode for process in cli]
        with session_scope() as db:
            run_ids = list(db.scalars(select(GradingRun.id)))
        wait_for(lambda: _all_finished(run_ids), 300, "every accepted upload to be graded", interval=1.0)
    finally:
        worker.stop()
        os.killpg(api.pid, 15)
        api.wait(20)
        for process in cli:
            if process.poll() is None:
                process.kill()
    refused = [answer for answer in answers if answer[0] != 202]
    assert refused, "no upload met the outage"
    assert all(code == 503 and retry_after and int(retry_after) > 0 for code, retry_after in refused), refused
    assert codes == [0] * CLI_UPLOADS, [err[-2000:] for _out, err in outputs]
    assert any("briefly unavailable" in err for _out, err in outputs), "grader submit never had to wait"
    with session_scope() as db:
        # Exactly the accepted uploads are stored, and each is graded once with its full score.
        assert db.scalar(select(func.count(Submission.id))) == RAW_UPLOADS + CLI_UPLOADS
        for run in db.scalars(select(GradingRun)):
            assert run.status == "graded" and run.score == run.max_score > 0, (run.id, run.status, run.message)
            assert db.scalar(select(func.count(RunEvent.id)).where(RunEvent.run_id == run.id,
                                                                    RunEvent.type == "done")) == 1
        assert db.scalar(select(func.count(GradingRun.id))) == RAW_UPLOADS + CLI_UPLOADS


def _all_finished(run_ids: list[int]) -> bool:
    with session_scope() as db:
        return all(db.get(GradingRun, run_id).finished for run_id in run_ids)
