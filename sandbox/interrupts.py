"""Termination signals as exceptions, so an interrupted process removes its job's sandbox at once.

A process killed by SIGTERM's default action runs no `finally`: its container would keep running until its own
wall-clock limit (45 minutes for training). Raised as `Interrupted` in the main thread instead, the exception
unwinds through the runner's `finally`, which removes the container (or kills the process group) before the
process ends. `grader grade` installs it; Celery's pool processes get the same from billiard (SIGTERM raises
SystemExit there), and a stopping worker signals them with `terminate_children`.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Callable, Iterable

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The process was told to stop (SIGTERM, SIGINT, SIGHUP) while it may have had a job running."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def raise_on_termination(signals: Iterable[int] = TERMINATION_SIGNALS) -> None:
    """From now on each of `signals` raises Interrupted in the main thread (call it from the main thread)."""
    handled = tuple(signals)

    def handler(signum: int, _frame) -> None:
        # A second signal must not break off the clean-up the first one started; the process is ending anyway.
        for other in handled:
            signal.signal(other, signal.SIG_IGN)
        raise Interrupted(signum)

    for signum in handled:
        signal.signal(signum, handler)


def ignore_repeats_after(signum: int = signal.SIGTERM, before: Callable[[], None] | None = None) -> None:
    """Wraps the current handler of `signum` so that once it has run, further `signum`s are ignored: a second
    SIGTERM (a process-group kill after the parent's own) must not cut off the clean-up the first one began.
    `before` runs first (its errors ignored), e.g. to remove containers no job will come for."""
    current = signal.getsignal(signum)
    if not callable(current) or getattr(current, "ignores_repeats", False):
        return

    def handler(number: int, frame) -> None:
        signal.signal(number, signal.SIG_IGN)
        try:
            if before is not None:
                before()
        except Exception:  # noqa: BLE001 - best effort: labelled containers are orphans for the next start
            pass
        try:
            current(number, frame)
        finally:
            signal.signal(number, signal.SIG_IGN)

    handler.ignores_repeats = True  # type: ignore[attr-defined]
    signal.signal(signum, handler)


def terminate_children(signum: int = signal.SIGTERM) -> list[int]:
    """Sends `signum` to this process's direct children (a worker's pool processes); returns their pids."""
    me = os.getpid()
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # Field 4 of /proc/<pid>/stat is the parent pid; the command name before it may contain spaces.
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == me:
            try:
                os.kill(int(entry.name), signum)
                children.append(int(entry.name))
            except ProcessLookupError:
                pass
    return children
