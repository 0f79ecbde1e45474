"""The autograder archive Gradescope expects: setup.sh and run_autograder at the root, with what they need.

    setup.sh            installs Python packages (requirements.txt) into /autograder/venv, prepares the sandbox
    run_autograder      grades /autograder/submission/spatial.py into /autograder/results/results.json
    requirements.txt    the grading side's packages, pinned to the versions this grader runs with
    spec.toml           the assignment's spec; bundle.json: slug, stages, full marks, versions, kit
    kit/tinytorch/      the course kit student code imports: the one the spec names (`[assignment] kit`), else
                        the built-in one
    grader/ sandbox/ reference/   the grader, the sandbox backends and harnesses, the reference

Only the correctness stage travels: CIFAR-10 training needs the data set and up to 45 minutes of CPU, which a
Gradescope run does not offer.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from grader import __version__
from grader.settings import PROJECT_ROOT

TEMPLATES = Path(__file__).resolve().parent
PACKAGES = ("grader", "sandbox", "reference")
PACKAGE_SUFFIXES = (".py", ".toml", ".md")
# The distributions the grading side imports (numpy, pydantic-settings and what they need), pinned as installed.
RUNTIME_DISTRIBUTIONS = ("numpy", "pydantic", "pydantic-core", "pydantic-settings", "annotated-types",
                         "typing-extensions", "typing-inspection", "python-dotenv")
BUNDLE_STAGES = ("correctness",)


class BundleError(ValueError):
    """The archive cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class Bundle:
    path: Path
    assignment: str
    stages: list[str]
    max_score: float
    notes: list[str]  # what the instructor should know (e.g. stages left out)


def requirements() -> str:
    lines = []
    for name in RUNTIME_DISTRIBUTIONS:
        try:
            lines.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError as error:
            raise BundleError(f"{name} is not installed here; run `make setup`") from error
    return "\n".join(lines) + "\n"


def _package_files(root: Path) -> list[tuple[str, bytes]]:
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and path.suffix in PACKAGE_SUFFIXES and "__pycache__" not in path.parts:
                files.append((str(path.relative_to(root)), path.read_bytes()))
    return files


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def _kit_package(spec_toml: str) -> tuple[Path, str]:
    """The tinytorch directory student code will import, and how bundle.json names it."""
    from grader.kits import KitError, kit_root
    from grader.settings import get_settings
    from grader.spec import parse_spec
    from sandbox.runner import KIT_DIR

    reference = parse_spec(spec_toml, source="spec").kit
    if not reference:
        return KIT_DIR / "tinytorch", "built-in"
    try:
        return kit_root(reference, get_settings()) / "tinytorch", reference
    except KitError as error:
        raise BundleError(str(error)) from error


def build_bundle(output: Path, *, assignment: str, spec_toml: str, stages: list[str] | None = None) -> Bundle:
    """Write the archive for `assignment` graded with `spec_toml` (its stages, or `stages`) to `output`."""
    from grader.assignment_spec import SpecError, summarize_spec

    try:
        every_stage = summarize_spec(spec_toml).stage_weights
    except SpecError as error:
        raise BundleError(f"the spec is not valid: {error}") from error
    kit_dir, kit_name = _kit_package(spec_toml)
    wanted = [name for name in (stages or list(every_stage)) if name in every_stage]
    notes = [f"left out the {name} stage: Gradescope runs offer neither the data set nor the CPU time it needs"
             for name in wanted if name not in BUNDLE_STAGES]
    wanted = [name for name in wanted if name in BUNDLE_STAGES]
    if not wanted:
        raise BundleError(f"nothing to grade on Gradescope: the bundle carries only the {', '.join(BUNDLE_STAGES)} "
                          "stage, and this spec or the stages asked for have none")
    summary = summarize_spec(spec_toml, wanted)
    described = {"assignment": assignment, "stages": wanted, "max_score": summary.max_score,
                 "spec_version": summary.version, "grader_version": __version__, "kit": kit_name}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        _add(archive, "setup.sh", (TEMPLATES / "setup.sh").read_bytes(), 0o755)
        _add(archive, "run_autograder", (TEMPLATES / "run_autograder.sh").read_bytes(), 0o755)
        _add(archive, "requirements.txt", requirements().encode())
        _add(archive, "spec.toml", spec_toml.encode())
        _add(archive, "bundle.json", (json.dumps(described, indent=1) + "\n").encode())
        for name, data in _package_files(PROJECT_ROOT):
            _add(archive, name, data)
        for path in sorted(kit_dir.rglob("*.py")):
            if "__pycache__" not in path.parts:
                _add(archive, f"kit/tinytorch/{path.relative_to(kit_dir)}", path.read_bytes())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(buffer.getvalue())
    return Bundle(path=output, assignment=assignment, stages=wanted, max_score=summary.max_score, notes=notes)
