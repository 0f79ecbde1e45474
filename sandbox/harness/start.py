"""Starts a harness: runs INSIDE the sandbox. Standard library only.

`python3 -I start.py HARNESS_FILE <the harness's own arguments>` runs the harness as `__main__` from the bytecode
compiled into the image (sandbox.runner.harness_argv builds this command line under every backend). Handed to
python3 directly, the harness script would be compiled from its source in every job.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the harness folder off sys.path

from harness_common import run_as_main  # noqa: E402

if __name__ == "__main__":
    harness_file = sys.argv[1]
    sys.argv = sys.argv[1:]
    run_as_main(harness_file)
