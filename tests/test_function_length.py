"""No function in the project is longer than 60 lines (scripts/check_function_length.py, over its default paths)."""

from __future__ import annotations

from scripts.check_function_length import DEFAULT_PATHS, ROOT, long_functions, python_files

LIMIT_LINES = 60


def test_no_function_is_longer_than_the_limit():
    files = python_files([ROOT / name for name in DEFAULT_PATHS])
    assert files, "no Python files found under the default paths"
    offenders = [f"{file.relative_to(ROOT)}:{line}: {name} is {length} lines"
                 for file in files for line, name, length in long_functions(file, LIMIT_LINES)]
    assert offenders == []
