"""Fixtures of the reference tests: both implementations (PyTorch helpers in tests/reference/torch_oracle.py)."""

from __future__ import annotations

import pytest

from reference import layers_fast, layers_loop

IMPLEMENTATIONS = {"fast": layers_fast, "loop": layers_loop}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def layers(request):
    """Each reference implementation in turn (same API)."""
    return IMPLEMENTATIONS[request.param]
