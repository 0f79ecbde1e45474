"""What runs inside Gradescope's autograder container: `prepare` (from setup.sh, once, as root) and `run` (from
run_autograder, once per submission).

Layout (Gradescope's, https://gradescope-autograders.readthedocs.io/en/latest/specs/):

    /autograder/source/                 the archive: grader, sandbox, reference, kit, spec.toml, bundle.json;
                                        made 0700 by `prepare`, so student code cannot read it
    /autograder/submission/spatial.py   the student's file
    /autograder/results/results.json    written by `run`, always, even when grading could not happen
    /autograder/sandbox/{kit,harness}   world-readable copies of what student code runs with (made by `prepare`)
    /autograder/jobs/                   job directories

Student code runs in a process of its own and never sees the grader: under bubblewrap over the container's root
with /autograder hidden when the container allows user namespaces, else as uid 65534 in a plain process
(sandbox/nobody_backend.py, weaker: no network isolation). Its raw outputs are judged here, outside it, by the
same pipeline the service runs. stdout (instructors only, by default) says which backend ran and why.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import subprocess
import time
from pathlib import Path

AUTOGRADER_ROOT = Path(os.environ.get("GRADESCOPE_AUTOGRADER_ROOT", "/autograder"))
SOURCE_DIR = Path(__file__).resolve().parents[2]  # /autograder/source when run from the archive
SUBMISSION_NAME = "spatial.py"
# Without writable cgroups (none in Gradescope's container) both backends bound processes with RLIMIT_NPROC, which
# the kernel counts per uid across the whole host: every container's uid-65534 processes count against it. The
# service's default of 64 then fails jobs at random on a busy host (seen in tests/grader/gradescope: bwrap's exec
# refused, exit 126, score 0); 512 still stops a fork bomb.
GRADESCOPE_PIDS = 512
BWRAP_MOUNT_POINTS = ("opt/kit", "opt/harness", "job/submission", "job/inputs", "job/data", "job/out")


def _paths(root: Path) -> dict[str, Path]:
    return {"submission": root / "submission", "results": root / "results" / "results.json",
            "sandbox": root / "sandbox", "kit": root / "sandbox" / "kit", "harness": root / "sandbox" / "harness",
            "jobs": root / "jobs"}


def prepare(root: Path = AUTOGRADER_ROOT) -> None:
    """Once, as root: world-readable kit and harnesses, NumPy for the system Python, bwrap mount points, and the
    archive itself closed to everyone but root."""
    from sandbox.runner import HARNESS_DIR

    paths = _paths(root)
    for key in ("kit", "harness"):
        shutil.rmtree(paths[key], ignore_errors=True)
    shutil.copytree(SOURCE_DIR / "kit" / "tinytorch", paths["kit"] / "tinytorch",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(HARNESS_DIR, paths["harness"], ignore=shutil.ignore_patterns("__pycache__"))
    # Student code runs with the system Python (-I), which must import NumPy without the grader's venv.
    import numpy

    numpy_dir = Path(numpy.__file__).resolve().parent
    target = Path(subprocess.run([_system_python(), "-I", "-c", "import site; print(site.getsitepackages()[0])"],
                                 capture_output=True, text=True, check=True).stdout.strip())
    target.mkdir(parents=True, exist_ok=True)
    for name in (numpy_dir.name, "numpy.libs"):
        source = numpy_dir.parent / name
        if source.is_dir() and not (target / name).exists():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    for mount_point in BWRAP_MOUNT_POINTS:  # bwrap binds the job's files there over the container's own root
        Path("/", mount_point).mkdir(parents=True, exist_ok=True)
    paths["jobs"].mkdir(parents=True, exist_ok=True)
    for directory in (paths["sandbox"], paths["kit"], paths["harness"]):
        for path in [directory, *directory.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    root.chmod(0o711)
    SOURCE_DIR.chmod(0o700)
    print(f"prepared {paths['sandbox']} and NumPy {numpy.__version__} in {target}")


def select_runner(root: Path = AUTOGRADER_ROOT):
    """bwrap over the container's root when it can run here, else a process as uid 65534; (runner, why)."""
    from sandbox.bwrap_backend import BwrapRunner, bwrap_usable
    from sandbox.nobody_backend import NobodyRunner

    paths = _paths(root)
    reason = bwrap_usable(Path("/"))
    if reason is None:
        runner = BwrapRunner(rootfs=Path("/"), hidden=(root,), job_root=paths["jobs"], kit_dir=paths["kit"],
                             harness_dir=paths["harness"], check=False)
        return runner, "bubblewrap (user, pid, network and mount namespaces; /autograder hidden)"
    runner = NobodyRunner(job_root=paths["jobs"], kit_dir=paths["kit"], harness_dir=paths["harness"],
                          python=_system_python())
    return runner, (f"a separate process as uid 65534, because bubblewrap cannot run here ({reason.strip()[:200]}); "
                    "no network isolation")


def _system_python() -> str:
    """The interpreter the venv was made from (student code must not run with the grader's site-packages)."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    return str(base if base.exists() else Path("/usr/bin/python3"))


def _submission(directory: Path) -> tuple[bytes | None, str]:
    """The student's file and a note, or (None, why not) in words for the student."""
    wanted = directory / SUBMISSION_NAME
    if wanted.is_file():
        return wanted.read_bytes(), ""
    found = sorted(p for p in directory.rglob("*.py") if p.is_file()) if directory.is_dir() else []
    if len(found) == 1:
        return found[0].read_bytes(), f"Graded {found[0].name} as {SUBMISSION_NAME} (the only Python file uploaded)."
    names = ", ".join(p.name for p in found) or "no Python file"
    return None, (f"No {SUBMISSION_NAME} was found in your submission ({names}). Upload your {SUBMISSION_NAME} "
                  f"itself (not a folder or a zip of it) and submit again.")


def run(root: Path = AUTOGRADER_ROOT) -> int:
    """Grade /autograder/submission/spatial.py and write results.json; returns 0 whenever results.json exists."""
    from grader.gradescope.results import results_json
    from grader.pipeline import grade_submission
    from grader.result import GradingResult
    from grader.settings import get_settings
    from grader.spec import parse_spec
    from sandbox.runner import InfrastructureError

    started = time.monotonic()
    paths = _paths(root)
    bundle = json.loads((SOURCE_DIR / "bundle.json").read_text())
    spec = parse_spec((SOURCE_DIR / "spec.toml").read_text(), source="spec.toml")
    source, note = _submission(paths["submission"])
    if source is None:
        result = GradingResult.failed(note, max_score=bundle["max_score"], grader_version=bundle["grader_version"])
    else:
        try:
            runner, why = select_runner(root)
            print(f"student code runs in {why}", flush=True)
            settings = get_settings().model_copy(update={"sandbox_pids": GRADESCOPE_PIDS})
            result = grade_submission(source, spec=spec, stages=bundle["stages"], runner=runner, settings=settings)
        except InfrastructureError as error:
            print(f"the sandbox failed: {error}", flush=True)
            result = GradingResult.failed(
                "The autograder could not run your file, through no fault of yours. Please submit again; if this "
                "message stays, tell your instructor.", max_score=bundle["max_score"],
                grader_version=bundle["grader_version"])
    document = results_json(result, execution_time=time.monotonic() - started, note=note if source else "")
    paths["results"].parent.mkdir(parents=True, exist_ok=True)
    paths["results"].write_text(json.dumps(document, indent=1))
    print(f"{bundle['assignment']}: {result.score:g} / {result.max_score:g} ({result.status}), "
          f"{len(result.tests)} checks, {document['execution_time']} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The grader inside Gradescope's autograder container.")
    parser.add_argument("action", choices=("prepare", "run"))
    args = parser.parse_args(argv)
    if args.action == "prepare":
        prepare()
        return 0
    return run()


if __name__ == "__main__":
    sys.exit(main())
