"""Smallest harness: imports the submission (running its top-level code) and reports that it did.

Used by `grader sandbox ensure-image` to check a fresh image, by the sandbox tests, and by the overhead benchmark.
Only the standard library and NumPy are imported here, like every harness.
"""

import importlib.util
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the harness folder off sys.path

from harness_common import parse_harness_args  # noqa: E402


def main() -> int:
    args = parse_harness_args()
    progress_path = os.path.join(args.out, "progress.jsonl")
    with open(progress_path, "a") as progress:
        progress.write(json.dumps({"event": "start"}) + "\n")
        progress.flush()
        spec = importlib.util.spec_from_file_location("spatial", args.submission)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        progress.write(json.dumps({"event": "imported"}) + "\n")
    import numpy

    result = {"imported": True, "numpy": numpy.__version__, "uid": os.getuid(),
              "names": sorted(name for name in vars(module) if not name.startswith("_"))}
    with open(os.path.join(args.out, "result.bin"), "w") as out:
        json.dump(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
