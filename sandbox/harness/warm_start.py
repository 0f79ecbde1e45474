"""Warm start: runs INSIDE a pre-started sandbox. Stdlib only, plus what the harness imports anyway.

`python3 -I warm_start.py GO_FIFO HARNESS_FILE <the harness's own arguments>` imports what every correctness job
imports before any student code runs (NumPy, the kit's Tensor), then blocks on the FIFO until the worker has written
this container's one job (submission and inputs) and says go; then it runs the harness as `__main__`, exactly as
a cold start would. The harness ends the process: a warm container takes one job and is removed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the harness folder off sys.path

from harness_common import parse_harness_args, run_as_main  # noqa: E402


def main() -> None:
    go_fifo, harness_file, harness_args = sys.argv[1], sys.argv[2], sys.argv[3:]
    sys.argv = [harness_file, *harness_args]
    parse_harness_args()  # puts the kit on sys.path, as the harness itself will
    import numpy  # noqa: F401  (the harness imports both before the student's file; so does this, earlier)

    try:
        import tinytorch.core.tensor  # noqa: F401
    except ImportError:
        pass  # a kit without it: the harness reports that itself, as on a cold start

    with open(go_fifo, "rb") as fifo:  # blocks until the worker opens it for writing
        fifo.read()
    run_as_main(harness_file)  # from the image's bytecode, the harness folder first on sys.path


if __name__ == "__main__":
    main()
