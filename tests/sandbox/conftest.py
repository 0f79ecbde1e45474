from tests.sandbox.helpers import _nothing_left_behind, docker_only_runner, runner  # noqa: F401 - fixtures
