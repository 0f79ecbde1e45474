"""The engine's CPU per job container under variants of the create options (issue 14: measure before changing).

Run: `.venv/bin/python -m bench.engine_options [--runs 15] [--rounds 3] [--command true|print] [VARIANT ...]`,
best against a private engine (bench/private_engine.py), since the parts are read from the engine's processes.
Each variant runs `--runs` containers made by `DockerRunner.container_options` and changed as named, then walks
them as a job does (create, wait from a thread, start, logs, remove); variants take turns for `--rounds` rounds.
`--command print` writes 1000 lines to stderr (a chatty submission), `true` nothing. Only for measuring: a
variant that drops a flag is not a proposal to drop it.
"""

from __future__ import annotations

import argparse
import os
import threading

from bench.cpu_accounting import per_item, snapshot

VARIANTS = {
    "current": lambda host_config: None,
    "log-none": lambda host_config: host_config.update(LogConfig={"Type": "none", "Config": {}}),
    "log-local": lambda host_config: host_config.update(
        LogConfig={"Type": "local", "Config": {"max-size": "256k", "max-file": "1", "compress": "false"}}),
    "no-init": lambda host_config: host_config.update(Init=False),
    "no-tmpfs": lambda host_config: host_config.pop("Tmpfs", None),
    "no-bind-mounts": lambda host_config: host_config.pop("Mounts", None),
}
COMMANDS = {"true": ["/bin/true"],
            "print": ["python3", "-c", "import sys\nfor _ in range(1000): sys.stderr.write('x' * 64 + '\\n')"]}


def one_container(runner, variant: str, command: list[str]) -> None:
    from sandbox.docker_backend import demultiplex
    from sandbox.jobdir import JobDirectory
    from sandbox.runner import SandboxJob

    api = runner.client.api
    job = SandboxJob("correctness", b"")
    with JobDirectory(runner.job_root, job) as job_dir:
        options = runner.container_options(job, job_dir)
        options["command"] = command
        VARIANTS[variant](options["host_config"])
        container_id = api.create_container(runner.image_id, use_config_proxy=False, **options)["Id"]
        waiter = threading.Thread(target=api.wait, args=(container_id,))
        waiter.start()
        api.start(container_id)
        waiter.join()
        if variant != "log-none":
            url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/logs"
            demultiplex(api.get(url, params={"stdout": 1, "stderr": 1, "tail": 200}).content)
        api.remove_container(container_id, force=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", help=f"any of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--command", choices=list(COMMANDS), default="true")
    args = parser.parse_args(argv)

    from grader.settings import get_settings
    from sandbox.select import select_runner

    runner = select_runner(get_settings(), "docker")
    variants = args.variants or list(VARIANTS)
    if set(variants) - set(VARIANTS):
        parser.error(f"unknown variants: {', '.join(sorted(set(variants) - set(VARIANTS)))}")
    sums: dict[str, dict[str, float]] = {variant: {} for variant in variants}
    for _ in range(args.rounds):
        for variant in variants:
            before = snapshot({"this_process": os.getpid()})
            for _ in range(args.runs):
                one_container(runner, variant, COMMANDS[args.command])
            spent = per_item(before, snapshot({"this_process": os.getpid()}), args.runs) or {}
            for part, seconds in spent.items():
                sums[variant][part] = sums[variant].get(part, 0.0) + seconds / args.rounds
    report = {variant: {part: round(seconds * 1000, 1) for part, seconds in parts.items()
                        if part not in ("postgres", "redis", "total")} for variant, parts in sums.items()}
    for variant, parts in report.items():
        engine = sum(parts.get(part, 0.0) for part in ("dockerd", "containerd", "shims_and_runc"))
        print(f"{variant:15s} engine {engine:6.1f} ms  " + "  ".join(f"{part} {ms}" for part, ms in parts.items()))
    return report


if __name__ == "__main__":
    main()
