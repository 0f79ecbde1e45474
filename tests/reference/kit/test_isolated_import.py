"""The kit imports in a bare interpreter (`python3 -I`) with only its own folder on sys.path, as in the sandbox."""

import ast
import subprocess
import sys

from tests.reference.kit.kit_files import KIT_DIR, SUBMISSIONS

ALLOWED_TOP_LEVEL = {"numpy", "tinytorch"} | set(sys.stdlib_module_names)


def test_kit_imports_only_numpy_and_the_standard_library():
    for path in sorted((KIT_DIR / "tinytorch").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED_TOP_LEVEL, f"{path.name} imports {name}"


def run_isolated(code, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(KIT_DIR)!r})\n{code}")
    return subprocess.run([sys.executable, "-I", str(script)], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def test_kit_and_fixtures_run_in_an_isolated_interpreter(tmp_path):
    code = f"""
import importlib.util
import numpy as np
import tinytorch, tinytorch.nn, tinytorch.nn.functional
from tinytorch.core import tensor, autograd, layers, activations, losses, optimizers, dataloader
spec = importlib.util.spec_from_file_location("spatial", {str(SUBMISSIONS / "good_vectorized.py")!r})
spatial = importlib.util.module_from_spec(spec)
spec.loader.exec_module(spatial)
net = spatial.SimpleCNN()
loss = losses.CrossEntropyLoss()(net(tensor.Tensor(np.zeros((2, 3, 32, 32), dtype=np.float32))), np.array([0, 1]))
loss.backward()
assert net.conv1.weight.grad.shape == (32, 3, 3, 3)
leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("grader", "reference", "sandbox", "api", "torch"))
print("LEAKED", leaked)
"""
    result = run_isolated(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "LEAKED []" in result.stdout
