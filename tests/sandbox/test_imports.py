"""The sandbox package's import rules, read from the source: no backend imports another backend (what backends
share lives in sandbox/core.py and sandbox/jobdir.py), the shared modules import no backend, and nothing in the
sandbox imports the grader or the API."""

from __future__ import annotations

import ast
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"
BACKENDS = {path.stem for path in SANDBOX.glob("*_backend.py")}
SHARED = {"core", "jobdir", "runner"}


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module a file imports, at any depth of the file (functions too), as absolute dotted names."""
    package = package or ".".join(path.relative_to(SANDBOX.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def sandbox_modules_imported(path: Path, package: str | None = None) -> set[str]:
    return {name.split(".")[1] for name in imported_modules(path, package) if name.startswith("sandbox.")}


def test_there_are_backends_to_check():
    assert BACKENDS == {"docker_backend", "bwrap_backend", "subprocess_backend", "nobody_backend"}


def test_no_backend_imports_another_backend():
    offences = {path.name: sorted(sandbox_modules_imported(path) & (BACKENDS - {path.stem}))
                for path in SANDBOX.glob("*_backend.py")}
    assert {name: found for name, found in offences.items() if found} == {}


def test_shared_modules_import_no_backend():
    offences = {f"{name}.py": sorted(sandbox_modules_imported(SANDBOX / f"{name}.py") & BACKENDS) for name in SHARED}
    assert {name: found for name, found in offences.items() if found} == {}


def test_the_sandbox_never_imports_the_grader_or_the_api():
    offences = {}
    for path in SANDBOX.rglob("*.py"):
        found = sorted(name for name in imported_modules(path) if name.split(".")[0] in ("grader", "api"))
        if found:
            offences[str(path.relative_to(SANDBOX))] = found
    assert offences == {}


def test_the_walk_sees_relative_and_nested_imports(tmp_path):
    # The rules above must not pass because the walk is blind: a planted offence is found.
    planted = tmp_path / "planted_backend.py"
    planted.write_text("def f():\n    from .docker_backend import DockerRunner\n    import sandbox.bwrap_backend\n"
                       "from . import subprocess_backend\n")
    assert sandbox_modules_imported(planted, package="sandbox") == {"docker_backend", "bwrap_backend",
                                                                   "subprocess_backend"}
