"""Every planted bug is caught in its own component only (simplecnn may also fail: it uses every layer), and
the diagnosis names the mistake where the manifest says the grader knows it."""

from __future__ import annotations

import pytest

from tests.fixtures.mutants import MUTANTS, mutant_info, mutant_source


def test_suite_is_large_enough():
    assert len(MUTANTS) >= 15
    assert {mutant_info(name).component for name in MUTANTS} == {"conv2d", "maxpool2d", "avgpool2d", "flatten",
                                                                  "simplecnn"}


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_mutant_is_caught_in_its_component_only(grade, name):
    component, diagnosis = mutant_info(name)
    result = grade(mutant_source(name))
    failing = {test.name.split(".")[0] for test in result.tests if test.status != "passed"}
    assert component in failing
    assert failing <= {component, "simplecnn"}, f"{name} also fails {failing - {component, 'simplecnn'}}"
    if diagnosis is not None:
        feedback = "\n".join(test.output for test in result.tests
                             if test.status != "passed" and test.name.startswith(component + "."))
        assert diagnosis in feedback
