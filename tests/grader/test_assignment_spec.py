"""Assignment specs: the default spec, patterns for points and visibility, other stages' sections, errors."""

from __future__ import annotations

import pytest

from grader.spec import SpecError, load_spec, parse_spec

MINIMAL = """
[assignment]
name = "a"
pass_mark = 0.6
[stages.correctness]
seed = 7
[stages.correctness.points]
"conv2d.forward.*" = 2
"*" = 1
[stages.correctness.visibility]
"*.hidden_*" = "hidden"
[stages.cifar10]
epochs = 3
max_score = 40
"""


def test_default_spec_loads_with_hidden_checks():
    spec = load_spec()
    assert spec.stage_names[0] == "correctness"
    assert any(visibility == "hidden" for _, visibility in spec.correctness.visibility)
    assert spec.correctness.points_for("conv2d.forward.k3_stride1_pad0") > 0
    assert 0 < spec.pass_mark <= 1


def test_patterns_first_match_wins_and_other_stages_are_kept():
    spec = parse_spec(MINIMAL)
    assert spec.correctness.seed == 7
    assert spec.correctness.points_for("conv2d.forward.x") == 2.0
    assert spec.correctness.points_for("flatten.backward.x") == 1.0
    assert spec.correctness.visibility_for("conv2d.forward.hidden_k5") == "hidden"
    assert spec.correctness.visibility_for("conv2d.forward.k5") == "visible"
    assert spec.stage_names == ["correctness", "cifar10"]
    assert spec.stages["cifar10"]["epochs"] == 3


@pytest.mark.parametrize("text, phrase", [
    ("[stages.other]\n", "correctness"),
    ("[stages.correctness.visibility]\n'*' = 'secret'\n", "visibility"),
    ("[stages.correctness.points]\n'*' = -1\n", "points"),
    ("[stages.correctness.limits]\nwall_secs = 3\n", "unknown field"),
    ("[assignment]\npass_mark = 2\n[stages.correctness]\n", "pass_mark"),
    ("[stages.correctness\n", "<string>"),
])
def test_malformed_specs_are_refused_with_the_reason(text, phrase):
    with pytest.raises(SpecError, match=phrase.replace("*", r"\*")):
        parse_spec(text)


def test_limits_override_settings(spec):
    from grader.settings import get_settings

    limits = get_settings().sandbox_limits(**spec.correctness.limits)
    assert limits.wall_seconds == spec.correctness.limits["wall_seconds"]


def test_case_seconds_override_reaches_the_harness_input():
    import json

    from grader.stages.correctness import job_inputs, prepared_runs

    spec = parse_spec("[stages.correctness]\n[stages.correctness.case_seconds]\nflatten = 1.5\n")
    assert spec.correctness.case_seconds == (("flatten", 1.5),)
    cases = json.loads(job_inputs(prepared_runs(0, spec.correctness.case_seconds))["cases.json"])["runs"]
    limits = {case["id"].split(".")[0]: case["time_limit_s"] for case in cases}
    assert limits["flatten"] == 1.5 and limits["conv2d"] == 5.0
    with pytest.raises(SpecError, match="case_seconds"):
        parse_spec("[stages.correctness]\n[stages.correctness.case_seconds]\nconv3d = 1\n")
