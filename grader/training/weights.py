"""The trained parameters the training job hands back: untrusted bytes -> validated float32 arrays."""

from __future__ import annotations

import io
import zipfile

import numpy as np

from reference import simple_cnn
from reference.architectures import MODULE_TEXT, Architecture

WEIGHTS_MAX_MEMBERS = 16
WEIGHTS_MAX_MEMBER_BYTES = 8 * 1024**2  # the largest parameter (fc1.weight, float64) is 4 MiB + header


def load_weights(blob: bytes, architecture: Architecture = MODULE_TEXT
                 ) -> tuple[dict[str, np.ndarray] | None, list[str]]:
    """Parse result.bin as an .npz of the SimpleCNN parameters; (params, []) or (None, problems)."""
    if not blob:
        return None, ["no trained parameters were handed back"]
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return None, ["the handed-back parameters are not an .npz archive"]
    if len(members) > WEIGHTS_MAX_MEMBERS:
        return None, [f"the parameter archive has {len(members)} members, "
                      f"expected {len(architecture.parameter_shapes())}"]
    for member in members:
        if member.file_size > WEIGHTS_MAX_MEMBER_BYTES:
            return None, [f"parameter {member.filename!r} is too large ({member.file_size} bytes)"]
    params: dict[str, np.ndarray] = {}
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as loaded:
            for name in loaded.files:
                params[name] = loaded[name]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        return None, [f"the parameter archive could not be read safely: {error}"[:300]]
    problems = simple_cnn.validate_params(params, architecture=architecture)
    if problems:
        return None, problems
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}, []
