"""Pieces every harness shares. Runs inside the sandbox: standard library only.

Harnesses run under `python3 -I`, which leaves their own folder off sys.path; each puts it back before importing
this module (the folder is read-only inside the sandbox).
"""

from __future__ import annotations

import io
import os
import sys
import types

# A harness exits with this code when Python raised MemoryError outside any case; the runner reports "memory"
# (sandbox/core.py reads the same constant, so the two sides cannot drift apart). An unusual number, so that a
# student's own sys.exit(n) is not taken for it by accident.
MEMORY_ERROR_EXIT_CODE = 86


class CappedWriter(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr while student code runs: passes the first bytes on to fd 2, drops the
    rest. Student output can never reach the result file."""

    def __init__(self, fd: int, cap: int):
        self.fd, self.left = fd, cap

    def writable(self) -> bool:
        return True

    def write(self, text) -> int:
        text = str(text)
        if self.left > 0:
            data = text.encode("utf-8", "replace")[: self.left]
            self.left -= len(data)
            try:
                os.write(self.fd, data)
            except OSError:
                pass
        return len(text)

    def flush(self) -> None:
        pass


HARNESS_OPTIONS = ("--kit", "--submission", "--inputs", "--data", "--out")


def parse_harness_args() -> types.SimpleNamespace:
    """The standard harness arguments (sandbox.runner.harness_argv); puts the course kit on sys.path. Others, the
    harness's own, are left to it. Not argparse: its import (with gettext) is a few ms of every job's CPU."""
    argv, values = sys.argv[1:], {}
    for index, word in enumerate(argv[:-1]):
        if word in HARNESS_OPTIONS and word not in values:
            values[word] = argv[index + 1]
    missing = [name for name in HARNESS_OPTIONS if name not in values]
    if missing:
        print(f"harness: missing {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    args = types.SimpleNamespace(**{name[2:]: value for name, value in values.items()})
    sys.path.insert(0, args.kit)
    return args


def run_as_main(harness_file: str) -> None:
    """Runs the harness module `harness_file` names as `__main__`, from the bytecode compiled into the image (runpy's
    run_path would compile the source every time). Its folder goes first on sys.path, so that no module of the
    kit's can stand in for the harness."""
    import runpy

    if not os.path.isfile(harness_file):  # as python3 itself says it of a missing script (sandbox/core.py reads it)
        print(f"python3: can't open file '{harness_file}': [Errno 2] No such file or directory", file=sys.stderr)
        raise SystemExit(2)
    sys.path.insert(0, os.path.dirname(harness_file))
    runpy.run_module(os.path.splitext(os.path.basename(harness_file))[0], run_name="__main__", alter_sys=True)
