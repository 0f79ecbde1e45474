"""The pipeline: stages in spec order, the CIFAR-10 gate, events, result assembly, the `grader grade` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grader import pipeline
from grader.result import GradingResult, StageResult
from grader.spec import load_spec, parse_spec
from grader.stages import StageOutput
from tests.fixtures.mutants import mutant_source

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py").read_bytes()
MUTANT = mutant_source("conv_no_bias")
AVG_MUTANT = mutant_source("avgpool_sum_instead_of_mean")


@pytest.fixture
def two_stage_spec(monkeypatch):
    calls = []

    def fake_training(context):
        calls.append(sorted(context.previous))
        context.emit({"type": "progress", "stage": "cifar10", "epoch": 1})
        return StageOutput(StageResult(name="cifar10", score=40.0, max_score=40.0, status="graded", duration_s=0.1),
                           extra={"cifar10": {"test_accuracy": 0.8}})

    from grader.stages import training

    monkeypatch.setattr(training, "run_stage", fake_training)  # the flow looks the function up when it runs
    text = (ROOT / "grader" / "specs" / "default.toml").read_text()
    if "[stages.cifar10]" not in text:
        text += "\n[stages.cifar10]\nmax_score = 40\n"
    return parse_spec(text), calls


def test_stages_run_in_order_and_extra_reaches_the_json(runner, two_stage_spec, full_score):
    spec, calls = two_stage_spec
    events = []
    result = pipeline.grade_submission(GOOD, spec=spec, runner=runner, on_event=events.append)
    assert [stage.name for stage in result.stages][:2] == ["correctness", "cifar10"]
    assert calls == [["correctness"]]
    data = result.to_json()
    assert data["cifar10"] == {"test_accuracy": 0.8}
    assert data["score"] == pytest.approx(full_score + 40.0)
    kinds = [(event["type"], event["stage"]) for event in events]
    assert kinds[0] == ("stage_started", "correctness") and ("stage_finished", "cifar10") in kinds
    assert any(event["type"] == "progress" and event["stage"] == "correctness" for event in events)


def test_training_is_skipped_when_a_trained_component_fails(runner, two_stage_spec):
    spec, calls = two_stage_spec
    result = pipeline.grade_submission(MUTANT, spec=spec, runner=runner)
    cifar = next(stage for stage in result.stages if stage.name == "cifar10")
    assert cifar.status == "skipped" and cifar.score == 0 and cifar.max_score > 0
    assert "conv2d" in cifar.message
    assert calls == []
    assert result.status == "graded"


def test_training_runs_when_only_an_untrained_component_fails(runner, two_stage_spec):
    spec, calls = two_stage_spec
    result = pipeline.grade_submission(AVG_MUTANT, spec=spec, runner=runner)
    assert next(stage for stage in result.stages if stage.name == "cifar10").status == "graded"
    assert calls == [["correctness"]]


def test_a_stage_run_alone_is_not_gated(runner, two_stage_spec):
    spec, calls = two_stage_spec
    result = pipeline.grade_submission(MUTANT, spec=spec, stages=["cifar10"], runner=runner)
    assert [stage.name for stage in result.stages] == ["cifar10"] and calls == [[]]


def _output(name: str, status: str, score: float = 1.0) -> StageOutput:
    return StageOutput(StageResult(name=name, score=score, max_score=2.0, status=status, duration_s=0.0,
                                   message=f"{name} said {status}"), extra={name: {"status": status}})


@pytest.mark.parametrize("first, second, expected", [
    ("graded", "graded", "graded"), ("graded", "skipped", "graded"), ("timeout", "graded", "timeout"),
    ("error", "timeout", "error"), ("timeout", "error", "error"), ("graded", "error", "error")])
def test_merging_adds_up_and_the_most_severe_status_wins(first, second, expected):
    merged = pipeline.merge(pipeline.merge(None, _output("correctness", first)), _output("cifar10", second, 0.5))
    assert (merged.score, merged.max_score, merged.status) == (1.5, 4.0, expected)
    assert [stage.name for stage in merged.stages] == ["correctness", "cifar10"]
    assert merged.message == f"correctness: correctness said {first}\ncifar10: cifar10 said {second}"
    assert merged.extra == {"correctness": {"status": first}, "cifar10": {"status": second}}


def test_a_result_survives_its_json(runner):
    result = pipeline.grade_submission(MUTANT, spec=load_spec(), stages=["correctness"], runner=runner)
    assert GradingResult.from_json(json.loads(json.dumps(result.to_json()))) == result


def test_unknown_stage_is_refused(runner):
    with pytest.raises(ValueError, match="unknown stage"):
        pipeline.grade_submission(GOOD, spec=load_spec(), stages=["nope"], runner=runner)


def grade_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", "grade", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_grade_command_report_and_exit_codes(tmp_path):
    mutant = tmp_path / "spatial.py"
    mutant.write_bytes(mutant_source("conv_flipped_kernel"))
    completed = grade_cli(str(mutant), "--stages", "correctness", "--sandbox", "unsafe-subprocess")
    assert completed.returncode == 1  # graded, below the pass mark
    assert completed.stdout.startswith("Score: ")
    assert "conv2d.forward.k3_stride1_pad0" in completed.stdout and "flipped" in completed.stdout
    missing = grade_cli(str(tmp_path / "absent.py"), "--json", "--sandbox", "unsafe-subprocess")
    assert missing.returncode == 2 and json.loads(missing.stdout)["status"] == "error"
    unknown = grade_cli(str(mutant), "--stages", "nope", "--sandbox", "unsafe-subprocess")
    assert unknown.returncode == 2 and "unknown stage" in unknown.stderr
