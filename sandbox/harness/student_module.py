"""Runs INSIDE the sandbox: imports the student's file the way the course's package holds it. Stdlib only.

The course exports module 09 to `tinytorch/core/spatial.py`, so students upload either their notebook export
(`from tinytorch.core.tensor import Tensor`) or the package copy (`from .tensor import Tensor`). The file is
loaded as the module `tinytorch.core.spatial` (package `tinytorch.core`, so relative imports resolve against
the kit) and is also registered as `spatial`. Its `__name__` is not "__main__", so code under
`if __name__ == "__main__":` never runs.

Course files often call their unit tests at the top level (`test_unit_conv2d()`). The file is executed one
top-level statement at a time; when such a bare call or `assert` raises an Exception, the failure is recorded
and the rest of the file still runs, so the layers defined after it are graded too. Any other statement that
raises (an import, a class body, an assignment) ends the import as before.
"""

from __future__ import annotations

import __future__ as future_features
import ast
import importlib.util
import sys

MODULE_NAME = "tinytorch.core.spatial"
PACKAGE = "tinytorch.core"
MAX_TEST_FAILURES = 5  # failing top-level test calls recorded per file


def new_module(path: str):
    """An empty module object for the file, registered as tinytorch.core.spatial and as spatial."""
    spec = importlib.util.spec_from_file_location(MODULE_NAME, path)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = PACKAGE
    sys.modules[MODULE_NAME] = module
    sys.modules["spatial"] = module
    try:
        import tinytorch.core as package

        setattr(package, "spatial", module)
    except ImportError:
        pass  # the kit is missing: the student's own imports will say so
    return module


def is_test_statement(node: ast.stmt) -> bool:
    """A top-level statement that only runs something: a bare call such as `test_unit_conv2d()`, an assert, or a
    `try:` / `for` / `with` / `if` block (older course files test at the top level in `try:` blocks) that defines
    and imports nothing the rest of the file could need."""
    if isinstance(node, ast.Assert) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return True
    if not isinstance(node, (ast.Try, ast.For, ast.While, ast.With, ast.If)):
        return False
    return not any(isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                      ast.ImportFrom, ast.Global))
                   for inner in ast.walk(node))


def execute(module, tree: ast.Module, path: str, describe, student_line, whole_file=None) -> list[dict]:
    """Run the file's top-level statements in `module`; return the failures of test statements.

    `describe(error)` and `student_line(error)` format an exception; any exception from another kind of
    statement (and every BaseException that is not an Exception, e.g. SystemExit or a time limit) propagates.
    `whole_file`, the file compiled in one piece, runs instead when the file has no test statement: then every
    exception propagates either way, and compiling each statement again cost ~1.4 ms of every such job.
    """
    if whole_file is not None and not any(is_test_statement(node) for node in tree.body):
        exec(whole_file, module.__dict__)
        return []
    failures: list[dict] = []
    flags = 0
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(future_features, alias.name, None)
                flags |= getattr(feature, "compiler_flag", 0)
        code = compile(ast.Module(body=[node], type_ignores=[]), path, "exec", flags=flags, dont_inherit=True)
        if not is_test_statement(node):
            exec(code, module.__dict__)
            continue
        try:
            exec(code, module.__dict__)
        except Exception as error:  # noqa: BLE001 - a student's test failing is reported, not fatal
            if len(failures) < MAX_TEST_FAILURES:
                failures.append({"statement_line": node.lineno, "message": describe(error),
                                 "line": student_line(error),
                                 "statement": ast.get_source_segment(_source_of(tree), node) or ""})
    return failures


def _source_of(tree: ast.Module) -> str:
    return getattr(tree, "_source", "")


def parse(text: str, path: str) -> ast.Module:
    """The file's syntax tree (raises SyntaxError like compile()), keeping the text for statement excerpts."""
    tree = ast.parse(text, filename=path)
    tree._source = text
    return tree
