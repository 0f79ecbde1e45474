"""How the harnesses run a student's file (sandbox/harness/student_module.py): top-level tests that fail are
recorded and the rest of the file still runs; a file without such tests runs as one piece."""

from __future__ import annotations

import traceback
import types

import pytest

from tests.sandbox.helpers import load_harness_module


@pytest.fixture(scope="module")
def student_module():
    return load_harness_module("student_module.py", "student_module")


def line_in_file(error: BaseException) -> int:
    return [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == "spatial.py"][-1]


def run(student_module, text: str, *, whole: bool = True):
    tree = student_module.parse(text, "spatial.py")
    whole_file = compile(text, "spatial.py", "exec", dont_inherit=True) if whole else None
    module = types.ModuleType("spatial")
    failures = student_module.execute(module, tree, "spatial.py", lambda error: f"{type(error).__name__}: {error}",
                                      line_in_file, whole_file)
    return module, failures


TESTED = "def f():\n    return 1\n\nassert f() == 2, 'f is wrong'\n\ndef g():\n    return 2\n"


@pytest.mark.parametrize("whole", [True, False])
def test_a_failing_top_level_test_is_recorded_and_the_rest_still_runs(student_module, whole):
    module, failures = run(student_module, TESTED, whole=whole)
    assert module.g() == 2
    assert [(failure["statement_line"], failure["line"], failure["message"]) for failure in failures] == \
        [(4, 4, "AssertionError: f is wrong")]


@pytest.mark.parametrize("whole", [True, False])
def test_a_file_without_tests_runs_the_same_in_one_piece(student_module, whole):
    text = "from __future__ import annotations\nimport math\n\ndef f(x: Undefined) -> int:\n    return 3\n\n" \
           "VALUE = f(0) + math.floor(0.5)\n"
    module, failures = run(student_module, text, whole=whole)
    assert failures == [] and module.VALUE == 3
    assert module.f.__annotations__ == {"x": "Undefined", "return": "int"}  # the __future__ import applies


@pytest.mark.parametrize("whole", [True, False])
def test_an_error_outside_tests_ends_the_import_at_its_line(student_module, whole):
    text = "def f():\n    return 1\n\nX = 1 / 0\nY = 2\n"
    with pytest.raises(ZeroDivisionError) as raised:
        run(student_module, text, whole=whole)
    assert line_in_file(raised.value) == 4
