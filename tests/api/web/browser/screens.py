"""What both browser tests share: where screenshots go, taking one, and holding the live service's worker still."""

from __future__ import annotations

import contextlib
import os
import signal

from tests.live_service import ARTIFACTS

SCREENSHOTS = ARTIFACTS / "browser"


@contextlib.contextmanager
def worker_paused(service):
    """The live service's worker (its second process) stopped for the block, so a run stays queued."""
    worker = service.processes[1]
    os.killpg(worker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.killpg(worker.pid, signal.SIGCONT)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
