"""The upload's syntax pre-check (grader/services/submissions.py: python_text): what it refuses and what it says."""

from __future__ import annotations

import pytest

from grader.services.errors import Invalid
from grader.services.submissions import python_text
from tests.factories import good_source


@pytest.mark.parametrize(("source", "said"), [
    (b"def forward(self, x:\n    return x\n", "'(' was never closed at line 1"),
    (b"class Conv2D:\n    pass\n  x = 1\n", "unindent does not match any outer indentation level at line 3"),
    # Parses, but would fail at import all the same: refused now, before it counts against the daily quota.
    (b"nonlocal weights\n", "nonlocal declaration not allowed at module level at line 1"),
])
def test_a_file_python_would_refuse_is_refused_with_the_reason_and_line(source, said):
    with pytest.raises(Invalid) as refused:
        python_text(source)
    assert said in str(refused.value) and "this upload did not count" in str(refused.value)


def test_a_good_file_and_one_that_only_fails_when_run_are_accepted():
    assert python_text(good_source()) == good_source().decode()
    assert python_text(b"return 1\n") == "return 1\n"  # a SyntaxError only when compiled: the sandbox reports it
