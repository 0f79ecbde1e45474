"""Put the course kit on sys.path as student code sees it (top-level `tinytorch`), and load fixture submissions."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KIT_DIR = ROOT / "reference" / "kit"
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"

if str(KIT_DIR) not in sys.path:
    sys.path.insert(0, str(KIT_DIR))


def load_submission(name):
    """Import tests/fixtures/submissions/<name>.py as a fresh module."""
    path = SUBMISSIONS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"submission_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
