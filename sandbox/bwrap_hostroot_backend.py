"""Bubblewrap over the machine's own root file system, for hosts with no separate sandbox root (Gradescope).

The bwrap backend runs jobs over var/sandbox/rootfs, a debootstrapped Debian. Gradescope's autograder container
has no such tree and builds none offline, so this variant binds the container's own `/` read-only instead and
hides the directories that hold the grader, the reference, the spec and the results behind empty tmpfs mounts
(`hidden`, e.g. /autograder). Everything else is the bwrap backend: namespaces, uid 65534, limits, job layout.
The mount points the backend binds into (/opt/kit, /opt/harness, /job/...) must exist in `/`; the caller creates
them once (Gradescope's setup.sh runs as root).
"""

from __future__ import annotations

from pathlib import Path

from sandbox.bwrap_backend import BwrapRunner
from sandbox.jobdir import JobDirectory
from sandbox.runner import SandboxJob

MOUNT_POINTS = ("opt/kit", "opt/harness", "job/submission", "job/inputs", "job/data", "job/out")


def create_mount_points(root: Path = Path("/")) -> None:
    for relative in MOUNT_POINTS:
        (root / relative).mkdir(parents=True, exist_ok=True)


class HostRootBwrapRunner(BwrapRunner):
    """The bwrap backend with `/` as its root file system and `hidden` directories replaced by empty ones."""

    def __init__(self, *, hidden: tuple[Path, ...], job_root: Path, kit_dir: Path, harness_dir: Path,
                 check: bool = True) -> None:
        self.hidden = tuple(Path(path) for path in hidden)
        super().__init__(rootfs=Path("/"), job_root=job_root, kit_dir=kit_dir, harness_dir=harness_dir, check=check)

    def _argv(self, job: SandboxJob, job_dir: JobDirectory) -> list[str]:
        argv = super()._argv(job, job_dir)
        root_bind = argv.index("--ro-bind") + 3  # ["--ro-bind", rootfs, "/"] is the first bind
        if argv[root_bind - 2:root_bind] != [str(self.rootfs), "/"]:
            raise RuntimeError("the bwrap backend's command line changed: the root bind is not first")
        hide = [argument for path in self.hidden for argument in ("--tmpfs", str(path))]
        return argv[:root_bind] + hide + argv[root_bind:]
