"""Print every function longer than a limit (default 60 lines), outside migrations and benchmarks.

    python scripts/check_function_length.py [--limit 60] [PATH ...]

A function's length counts from its `def` line (decorators excluded) to its last line, nested functions
included in their parent. Exit code 1 when something is longer than the limit, else 0.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATHS = ("api", "grader", "sandbox", "reference", "scripts", "tests")
EXCLUDED_PARTS = {"alembic", "bench", ".venv", "__pycache__", "node_modules"}


def long_functions(path: Path, limit: int) -> list[tuple[int, str, int]]:
    """(line, qualified name, length) of each function in `path` longer than `limit` lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = child.end_lineno - child.lineno + 1
                if length > limit:
                    found.append((child.lineno, prefix + child.name, length))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def python_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        files += [file for file in candidates if not EXCLUDED_PARTS & set(file.relative_to(ROOT).parts)]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = [path.resolve() for path in args.paths] or [ROOT / name for name in DEFAULT_PATHS]
    offenders = [(file, *found) for file in python_files(paths) for found in long_functions(file, args.limit)]
    for file, line, name, length in offenders:
        print(f"{file.relative_to(ROOT)}:{line}: {name} is {length} lines")
    sys.stdout.flush()
    print(f"{len(offenders)} function(s) longer than {args.limit} lines", file=sys.stderr)
    return 1 if offenders else 0


if __name__ == "__main__":
    sys.exit(main())
