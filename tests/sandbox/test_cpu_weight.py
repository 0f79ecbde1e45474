"""Training containers get a lower CPU weight than correctness containers, so feedback stays fast while training
runs (issues 11 and 14). Read from inside real containers: the cgroup's cpu.shares is what the kernel applies."""

from __future__ import annotations

import pytest

from grader.settings import get_settings
from grader.spec import load_spec
from grader.training.recipe import StageConfig
from tests.sandbox.helpers import probe, reported

SHARES = "report({'shares': int(open('/sys/fs/cgroup/cpu/cpu.shares').read())})\n"


def test_training_jobs_weigh_less_than_correctness_jobs():
    settings = get_settings()
    training = StageConfig.from_spec(load_spec().stages["cifar10"], settings).limits
    correctness = settings.sandbox_limits(**load_spec().correctness.limits)
    assert training.cpu_shares == settings.training_cpu_shares < correctness.cpu_shares == settings.sandbox_cpu_shares


@pytest.mark.docker
def test_the_kernel_applies_each_jobs_cpu_weight(docker_only_runner):
    for shares in (256, 1024):
        assert reported(docker_only_runner.run(probe(SHARES, cpu_shares=shares))) == {"shares": shares}
