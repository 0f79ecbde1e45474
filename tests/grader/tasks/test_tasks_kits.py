"""A worker grades a submission to an assignment with an uploaded course kit in that kit's own sandbox image."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.kits import store_kit
from grader.settings import get_settings
from grader.store.db import session_scope
from grader.store.models import GradingRun
from tests.factories import make_world
from tests.service_fixtures import submit, wait_for
from tests.grader.test_kits import USES_EXTRA, kit_archive

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


def _finished(run_id: int):
    with session_scope() as db:
        run = db.get(GradingRun, run_id)
        return run if run.status in ("graded", "error", "timeout") else None


def test_worker_uses_the_assignments_kit(client, clean_db, start_worker):
    stored = store_kit(kit_archive(), get_settings())
    spec = (ROOT / "grader" / "specs" / "default.toml").read_text().replace(
        "pass_mark = 0.75", f'pass_mark = 0.75\nkit = "{stored.reference}"')
    world = make_world(spec_toml=spec)
    start_worker()
    accepted = submit(client, world, source=USES_EXTRA.encode())
    run = wait_for(lambda: _finished(accepted["run_id"]), 240, "the run to finish")
    assert run.status == "graded" and run.score == run.max_score > 0, run.result
    assert run.backend == "docker" and run.image_digest.startswith("sha256:")
