"""Pre-started containers (sandbox/docker_warm.py): still one fresh container per job, the job's wall clock from
its arrival, nothing reused, nothing left. The whole sandbox and security suites also run through a warm runner
(the "docker-warm" runner in tests/sandbox/helpers.py); these are what only a pool can get wrong."""

from __future__ import annotations

import time

import docker
import pytest

from sandbox import docker_warm
from sandbox.select import docker_runner
from grader.settings import get_settings
from tests.sandbox.helpers import OVERHEAD_ALLOWANCE_S, leftover_containers, leftover_job_dirs, probe, reported

pytestmark = pytest.mark.docker

WHERE = ("import os, socket\nreport({'cgroup': open('/proc/self/cgroup').read(), 'inputs': sorted(os.listdir("
         "'/job/inputs')), 'submission': open('/job/submission/spatial.py').read()[-40:]})\n")


@pytest.fixture
def warm_runner():
    runner = docker_runner(get_settings())
    runner.keep_warm(probe(""), 1)
    yield runner
    runner.keep_warm(None, 0)


def ready(runner, seconds: float = 60.0) -> None:
    """Waits until the pool's container is started and its Python waits on the FIFO."""
    pool = runner.warm_pool
    deadline = time.monotonic() + seconds
    while (pool.ready.qsize() < pool.size or not pool.settled()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.ready.qsize() == pool.size
    time.sleep(1.0)


def test_each_job_gets_its_own_fresh_container_and_its_own_files(warm_runner):
    first = warm_runner.run(probe(WHERE + "# first\n"))  # cold: the pool fills after the first job like it
    ready(warm_runner)
    second = warm_runner.run(probe(WHERE + "# second\n"))
    ready(warm_runner)
    third = warm_runner.run(probe(WHERE + "# third\n"))
    assert warm_runner.warm_pool.served == 2
    reports = [reported(outcome) for outcome in (first, second, third)]
    assert len({report["cgroup"] for report in reports}) == 3  # three containers
    assert [report["submission"].strip().splitlines()[-1] for report in reports] == ["# first", "# second",
                                                                                      "# third"]
    assert reports[1]["inputs"] == ["go"]  # nothing of another job; the FIFO is read-only here


def test_the_wall_clock_starts_when_the_job_arrives(warm_runner):
    warm_runner.run(probe("report({})\n"))
    ready(warm_runner)
    time.sleep(3.0)  # waiting longer than the job's whole wall clock must not count against it
    outcome = warm_runner.run(probe("import time\ntime.sleep(1.5)\nreport({'slept': True})\n", wall_seconds=2.5))
    assert warm_runner.warm_pool.served == 1
    assert reported(outcome) == {"slept": True}
    looping = warm_runner.run(probe("while True:\n    pass\n", wall_seconds=2.0))
    assert looping.status == "timeout" and looping.duration_s < 2.0 + OVERHEAD_ALLOWANCE_S


def test_the_job_cannot_reach_the_fifo_or_its_inputs(warm_runner):
    warm_runner.run(probe("report({})\n"))
    ready(warm_runner)
    source = ("results = {}\nfor path in ('/job/inputs/go', '/job/inputs/extra', '/job/submission/spatial.py'):\n"
              "    try:\n        open(path, 'w').write('x')\n        results[path] = 'written'\n"
              "    except OSError as error:\n        results[path] = type(error).__name__\nreport(results)\n")
    result = reported(warm_runner.run(probe(source)))
    assert warm_runner.warm_pool.served == 1
    assert "written" not in result.values(), result


def test_jobs_that_differ_in_their_container_run_cold(warm_runner):
    warm_runner.run(probe("report({})\n"))
    ready(warm_runner)
    outcome = warm_runner.run(probe("report({'ok': 1})\n", memory_bytes=300 * 1024 * 1024))
    assert reported(outcome) == {"ok": 1} and warm_runner.warm_pool.served == 0


def test_a_container_that_died_while_waiting_is_never_used(warm_runner):
    warm_runner.run(probe("report({})\n"))
    ready(warm_runner)
    waiting = list(warm_runner.warm_pool.ready.queue)[0]
    waiting.started.container.kill()
    deadline = time.monotonic() + 30
    while waiting.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    outcome = warm_runner.run(probe("report({'ok': 1})\n"))
    assert reported(outcome) == {"ok": 1} and warm_runner.warm_pool.served == 0
    with pytest.raises(docker.errors.NotFound):
        warm_runner.client.containers.get(waiting.started.container.id)
    assert not waiting.job_dir.path.exists()


def test_closing_removes_every_waiting_container(warm_runner):
    warm_runner.run(probe("report({})\n"))
    ready(warm_runner)
    waiting = [warm.started.container.id for warm in docker_warm.waiting()]
    assert waiting
    docker_warm.close_all()
    for container_id in waiting:
        with pytest.raises(docker.errors.NotFound):
            warm_runner.client.containers.get(container_id)
    assert leftover_containers(warm_runner) == [] and leftover_job_dirs() == []
    assert reported(warm_runner.run(probe("report({'ok': 1})\n"))) == {"ok": 1}  # cold once closed
