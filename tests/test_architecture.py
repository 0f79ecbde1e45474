"""Import rules of the layers (docs/architecture.md), checked by walking every import statement, including the
ones inside functions:

- nothing under grader/store imports the grading flow (grader/pipeline.py), a stage (grader/stages/, their helpers
  in grader/correctness/ and grader/training/) or the worker (grader/tasks.py): persistence never reaches up into
  orchestration;
- no api/routes module imports another route module or the dashboard (api/web);
- no sandbox backend (sandbox/*_backend.py) imports another backend: what they share lives beside them;
- nothing in grader/ imports api/.

And docs/architecture.md stays true: every module it names exists, its walk has at most eight steps.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FLOW_AND_STAGES = ("grader.pipeline", "grader.stages", "grader.training", "grader.correctness", "grader.tasks")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_statements(path: Path, root: Path = ROOT) -> list[list[str]]:
    """The modules each import statement of `path` may bring in; `from a import b` names both `a.b` (b may be a
    module) and `a`."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    statements = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            statements.append([alias.name for alias in node.names])
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            statements.append([f"{target}.{alias.name}" for alias in node.names] + [target])
    return statements


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    return {module for statement in import_statements(path, root) for module in statement}


def within(module: str, prefixes) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def violations(root: Path = ROOT) -> list[str]:
    """One line per import statement that breaks a rule: `<importing module> -> <imported module>: <rule>`."""
    problems = []
    for path in sorted(root.glob("grader/**/*.py")) + sorted(root.glob("api/**/*.py")) + sorted(
            root.glob("sandbox/*.py")):
        source = module_name(path, root)
        for statement in import_statements(path, root):
            broken = [(target, rule) for target in statement if (rule := _broken_rule(source, target))]
            if broken:
                problems.append(f"{source} -> {broken[0][0]}: {broken[0][1]}")
    return problems


def _broken_rule(source: str, target: str) -> str:
    if within(source, ["grader.store"]) and within(target, FLOW_AND_STAGES):
        return "the store must not import the flow, a stage or the worker"
    if within(source, ["grader"]) and within(target, ["api"]):
        return "grader must not import api"
    if within(source, ["api.routes"]) and source != "api.routes":
        if within(target, ["api.web"]):
            return "a route must not import the dashboard"
        if within(target, ["api.routes"]) and target not in ("api.routes", source):
            return "a route must not import another route"
    if _is_backend(source) and _is_backend(target) and target != source:
        return "a sandbox backend must not import another backend"
    return ""


def _is_backend(module: str) -> bool:
    return module.startswith("sandbox.") and module.count(".") == 1 and module.endswith("_backend")


def test_the_layers_import_the_right_way():
    assert violations() == []


def test_the_walk_sees_every_layer():
    """Guards the guard: the walk reaches the modules the rules are about, imports inside functions included."""
    modules = {module_name(path) for path in ROOT.glob("grader/store/*.py")}
    assert {"grader.store.runs", "grader.store.models"} <= modules
    assert "grader.pipeline" in imported_modules(ROOT / "grader" / "tasks.py")
    backends = [path for path in ROOT.glob("sandbox/*_backend.py")]
    assert len(backends) >= 2


@pytest.mark.parametrize("path, text, rule", [
    ("grader/store/bad.py", "def f():\n    from grader.pipeline import stage_max\n", "the store"),
    ("grader/store/bad.py", "from grader.stages import training\n", "the store"),
    ("grader/store/bad.py", "from ..training.judging import score_for\n", "the store"),
    ("api/routes/bad.py", "from api.routes.courses import router\n", "another route"),
    ("api/routes/bad.py", "from . import me\n", "another route"),
    ("api/routes/bad.py", "import api.web.pages\n", "the dashboard"),
    ("sandbox/bad_backend.py", "from sandbox.docker_backend import classify\n", "another backend"),
    ("grader/bad.py", "from api import presenters\n", "must not import api"),
])
def test_each_rule_catches_a_planted_import(tmp_path, path, text, rule):
    for folder in ("grader/store", "api/routes", "sandbox"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text(text)
    found = violations(tmp_path)
    assert len(found) == 1 and rule in found[0], found


ARCHITECTURE_DOC = ROOT / "docs" / "architecture.md"


def named_paths(text: str) -> list[str]:
    """Every file or folder a text names in backticks: `grader/pipeline.py`, `grader/checks/`."""
    return re.findall(r"`((?:api|grader|sandbox|reference|tests|scripts|alembic|bench)/[\w./]*)`", text)


def test_the_architecture_doc_names_only_modules_that_exist():
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    paths = named_paths(text)
    assert len(paths) > 20
    missing = [path for path in paths if not (ROOT / path).exists()]
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_the_walk_has_at_most_eight_steps_each_naming_its_module():
    walk = ARCHITECTURE_DOC.read_text(encoding="utf-8").split("## One submission")[1].split("\n## ")[0]
    steps = re.split(r"\n(?=\d+\. )", walk.strip())[1:]
    assert 1 <= len(steps) <= 8 and [int(step.split(".")[0]) for step in steps] == list(range(1, len(steps) + 1))
    assert all(any(path.endswith(".py") for path in named_paths(step)) for step in steps)
