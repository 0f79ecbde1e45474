"""Put the course kit on sys.path as student code sees it (top-level `tinytorch`)."""

import sys

import pytest

from tests.reference.kit.kit_files import KIT_DIR

if str(KIT_DIR) not in sys.path:
    sys.path.insert(0, str(KIT_DIR))


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(1234)
