"""Every planted bug is caught in its own component only (simplecnn may also fail: it uses every layer), and
the diagnosis names the mistake where the manifest says the grader knows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MUTANTS = Path(__file__).resolve().parent.parent / "fixtures" / "mutants"

MANIFEST = json.loads((MUTANTS / "manifest.json").read_text())


def test_suite_is_large_enough():
    assert len(MANIFEST) >= 15
    assert {info["component"] for info in MANIFEST.values()} == {"conv2d", "maxpool2d", "avgpool2d", "flatten",
                                                                  "simplecnn"}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_mutant_is_caught_in_its_component_only(grade, name):
    component, diagnosis = MANIFEST[name]["component"], MANIFEST[name]["diagnosis"]
    result = grade((MUTANTS / f"{name}.py").read_bytes())
    failing = {test.name.split(".")[0] for test in result.tests if test.status != "passed"}
    assert component in failing
    assert failing <= {component, "simplecnn"}, f"{name} also fails {failing - {component, 'simplecnn'}}"
    if diagnosis is not None:
        feedback = "\n".join(test.output for test in result.tests
                             if test.status != "passed" and test.name.startswith(component + "."))
        assert diagnosis in feedback
