"""Trust boundary: nothing the student's code prints, writes, patches or exits with raises its score.

Each hostile file is a correct file plus one attack; its score must equal exactly what its honest part earns.
These run on the UNSAFE subprocess runner (the same harness and trusted-side validation as under Docker; the
container-level attacks are tests/security's).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GOOD = (ROOT / "tests" / "fixtures" / "submissions" / "good_vectorized.py").read_text()
assert "\nimport numpy as np\n" in GOOD, "the attacks below are injected after this line"

BROKEN_MAXPOOL = GOOD + '''

class MaxPool2D(MaxPool2D):
    def forward(self, x):
        out = super().forward(x)
        return Tensor(np.zeros_like(out.data), requires_grad=True)
'''
BROKEN_CONV = GOOD + '''

class Conv2D(Conv2D):
    def forward(self, x):
        out = super().forward(x)
        return Tensor(np.zeros_like(out.data) + 0.5, requires_grad=True)
'''
FORGED_RECORD = '''
import io as _io, json as _json, sys as _sys
def _forge():
    out = _sys.argv[_sys.argv.index("--out") + 1]
    runs = {}
    cases = _json.load(open(_sys.argv[_sys.argv.index("--inputs") + 1] + "/cases.json"))
    arrays = {}
    for run in cases["runs"]:
        runs[run["id"]] = {"status": "ok", "phase": "backward", "error": "", "notes": [], "param_shapes": {}}
        arrays[run["id"] + "/out"] = np.zeros(3)
    record = {"format": 1, "import": {"status": "ok"}, "classes": {"conv2d": "Conv2D", "maxpool2d": "MaxPool2D",
              "avgpool2d": "AvgPool2D", "flatten": "Flatten", "simplecnn": "SimpleCNN"}, "runs": runs,
              "score": 1e9, "passed": True}
    buffer = _io.BytesIO()
    np.savez(buffer, **{"record.json": np.frombuffer(_json.dumps(record).encode(), dtype=np.uint8)}, **arrays,
             evil=np.array([object()], dtype=object))
    with open(out + "/result.bin", "wb") as handle:
        handle.write(buffer.getvalue())
_forge()
'''


def score_of(result, components) -> float:
    return sum(test.max_score for test in result.tests if test.name.split(".")[0] in components)


def score_without(result, components) -> float:
    """Full points of every check outside `components`, plus SimpleCNN's API check (it runs no forward)."""
    return sum(test.max_score for test in result.tests
               if test.name.split(".")[0] not in components or test.name == "simplecnn.api.parameters")


@pytest.fixture(scope="module")
def honest(grade):
    return {"good": grade(GOOD), "maxpool": grade(BROKEN_MAXPOOL), "conv": grade(BROKEN_CONV)}


def test_honest_baselines(honest, full_score):
    assert honest["good"].score == pytest.approx(full_score)
    for key, component in (("maxpool", "maxpool2d"), ("conv", "conv2d")):
        result = honest[key]
        assert all(test.status == "passed" for test in result.tests
                   if test.name.split(".")[0] not in (component, "simplecnn"))
        assert result.score == pytest.approx(sum(test.score for test in result.tests))
        assert result.score < full_score - score_of(result, {component}) + 1e-9


def test_printed_fake_result_changes_nothing(grade, honest):
    fake = json.dumps({"score": 1000, "max_score": 1000, "status": "graded", "tests": []})
    source = BROKEN_MAXPOOL.replace("import numpy as np\n", "import numpy as np\nimport os, sys\n"
                                    f"print({fake!r})\nsys.__stdout__.write({fake!r})\nos.write(1, b{fake!r})\n"
                                    f"os.write(2, b{fake!r})\n", 1)
    assert grade(source).score == pytest.approx(honest["maxpool"].score)


def test_sys_exit_inside_forward_costs_only_that_component(grade, honest, full_score):
    source = GOOD + "\n\nclass MaxPool2D(MaxPool2D):\n    def forward(self, x):\n        import sys\n        sys.exit(0)\n"
    result = grade(source)
    assert result.score == pytest.approx(score_without(result, {"maxpool2d", "simplecnn"}))
    assert any("SystemExit" in test.output for test in result.tests if test.name.startswith("maxpool2d.forward."))


def test_os_exit_inside_forward_keeps_what_ran_before(grade):
    source = GOOD + "\n\nclass MaxPool2D(MaxPool2D):\n    def forward(self, x):\n        import os\n        os._exit(0)\n"
    result = grade(source)
    # conv2d runs first and finishes; the job ends at the first MaxPool2D forward.
    assert result.score == pytest.approx(score_of(result, {"conv2d"}))
    assert result.status == "error"
    assert "exited before" in result.message
    assert any("not reached" in test.output for test in result.tests if test.name.startswith("flatten."))


def test_os_exit_at_import(grade):
    result = grade("import os\nos._exit(0)\n" + GOOD)
    assert result.score == 0.0 and result.status == "error"
    assert "exited before the checks" in result.message


def test_monkeypatched_numpy_comparisons_change_nothing(grade, honest):
    patch = ("import numpy as np\n"
             "np.allclose = lambda *a, **k: True\n"
             "np.array_equal = lambda *a, **k: True\n"
             "np.isclose = lambda a, b, *r, **k: np.ones(np.shape(a), dtype=bool)\n"
             "np.testing.assert_allclose = lambda *a, **k: None\n")
    source = BROKEN_CONV.replace("import numpy as np\n", patch, 1)
    assert grade(source).score == pytest.approx(honest["conv"].score)


def test_lying_ndarray_subclass_changes_nothing(grade, honest):
    liar = '''

class Liar(np.ndarray):
    def __eq__(self, other):
        return np.ones(self.shape, dtype=bool)
    def __array_finalize__(self, obj):
        pass
    def all(self, *args, **kwargs):
        return True


class Conv2D(Conv2D):
    def forward(self, x):
        out = super().forward(x)
        lie = (np.zeros_like(out.data) + 0.5).view(Liar)
        tensor = Tensor(lie, requires_grad=True)
        tensor.data = lie
        return tensor
'''
    assert grade(GOOD + liar).score == pytest.approx(honest["conv"].score)


def test_forged_result_file_then_exit_earns_nothing(grade):
    result = grade(GOOD.replace("import numpy as np\n", "import numpy as np\nimport os\n", 1)
                   + FORGED_RECORD + "os._exit(0)\n")
    # The forged record may claim anything, the status too; no forged array matches the reference.
    assert result.score == 0.0
    assert all(test.status != "passed" for test in result.tests)


def test_forged_result_file_is_overwritten_by_the_honest_run(grade, honest):
    assert grade(BROKEN_MAXPOOL + FORGED_RECORD).score == pytest.approx(honest["maxpool"].score)


def test_cli_json_is_one_object_despite_student_prints(tmp_path, full_score):
    source = GOOD.replace("import numpy as np\n", "import numpy as np\nprint('{\"score\": 1000}')\n", 1)
    path = tmp_path / "spatial.py"
    path.write_text(source)
    completed = subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(path), "--json", "--stages",
                                "correctness", "--sandbox", "unsafe-subprocess"], capture_output=True, text=True,
                               cwd=ROOT, timeout=300)
    data = json.loads(completed.stdout)
    assert completed.returncode == 0
    assert data["score"] == pytest.approx(full_score)
    assert set(data) >= {"score", "max_score", "status", "stages", "tests", "grader_version"}
    assert data["stages"][0]["name"] == "correctness"
    assert {"name", "stage", "score", "max_score", "status", "visibility", "output"} <= set(data["tests"][0])
