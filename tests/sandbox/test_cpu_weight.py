"""Training containers get a lower CPU weight than correctness containers, so feedback stays fast while training
runs (issues 11 and 14). Read from inside real containers: the cgroup's cpu.shares is what the kernel applies."""

from __future__ import annotations

import pytest

from grader.settings import get_settings
from grader.spec import load_spec
from grader.training.recipe import StageConfig
from tests.sandbox.helpers import probe, reported

SHARES = "report({'shares': int(open('/sys/fs/cgroup/cpu/cpu.shares').read())})\n"
# The job's own CPU cgroup as the host names it (cgroup v1 with the host's cgroup namespace: docker 20.10's default).
CPU_CGROUP = ("report({'cpu': [line.split(':', 2)[2] for line in open('/proc/self/cgroup').read().splitlines()\n"
              "                if line.split(':', 2)[1] in ('cpu', 'cpu,cpuacct')]})\n")


def test_training_jobs_weigh_less_than_correctness_jobs():
    settings = get_settings()
    training = StageConfig.from_spec(load_spec().stages["cifar10"], settings).limits
    correctness = settings.sandbox_limits(**load_spec().correctness.limits)
    assert training.cpu_shares == settings.training_cpu_shares < correctness.cpu_shares == settings.sandbox_cpu_shares
    # ... and weigh less than the grading processes outside the containers too (the worker, the engine, Postgres)
    assert training.cpu_shares_host_wide and not correctness.cpu_shares_host_wide


@pytest.mark.docker
def test_the_kernel_applies_each_jobs_cpu_weight(docker_only_runner):
    for shares in (256, 1024):
        assert reported(docker_only_runner.run(probe(SHARES, cpu_shares=shares))) == {"shares": shares}


@pytest.mark.docker
def test_a_host_wide_weight_puts_the_container_beside_the_engines_group(docker_only_runner):
    """Under the cgroupfs driver a host-wide job's cgroup is a child of the hierarchy's root, not of the group that
    holds the engine's other containers: its weight is then compared with every process of the host."""
    if docker_only_runner.client.info().get("CgroupDriver") != "cgroupfs":
        pytest.skip("the engine's containers are placed by systemd")
    beside = reported(docker_only_runner.run(probe(CPU_CGROUP, cpu_shares=64)))["cpu"]
    host_wide = reported(docker_only_runner.run(probe(CPU_CGROUP, cpu_shares=64, cpu_shares_host_wide=True)))["cpu"]
    if beside == ["/"]:
        pytest.skip("the containers have a cgroup namespace of their own: their cgroup paths are hidden")
    assert beside[0].count("/") == 2 and host_wide[0].count("/") == 1, (beside, host_wide)
    assert reported(docker_only_runner.run(probe(SHARES, cpu_shares=64, cpu_shares_host_wide=True))) == {"shares": 64}
