"""Where the course kit and the fixture submissions are, and how a test imports a submission as a module."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
KIT_DIR = ROOT / "reference" / "kit"
SUBMISSIONS = ROOT / "tests" / "fixtures" / "submissions"


def load_submission(name):
    """Import tests/fixtures/submissions/<name>.py as a fresh module."""
    path = SUBMISSIONS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"submission_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
