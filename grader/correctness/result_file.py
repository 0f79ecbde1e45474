"""The correctness job's result file, result.bin: untrusted bytes -> a validated record and float64 arrays.

The file is opened with zipfile and numpy.lib.format (no pickle); each member's declared size, dtype (little-endian
float64, or float32, which the harness keeps when the student's array is float32: half the bytes, and its float64
copy here is exact) and shape are checked before its data is read, and the record is parsed as JSON (read field by
field later). A plain stored member, which is every member the harness writes, is sliced out of the file's bytes
after the same checks zipfile's own read makes (`_stored_bytes`); any other goes through zipfile.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from grader.checks import PreparedRun, parameter_names

RECORD_MAX_BYTES = 1024 * 1024  # the JSON record inside result.bin
ARRAY_DTYPES = (np.dtype("<f8"), np.dtype("<f4"))  # what an output array may be stored as
MAX_MEMBERS = 1000  # members of result.bin


def max_elements(prepared: PreparedRun) -> int:
    """The most elements the grader accepts for one array of this run (generous, but bounded)."""
    largest = max([array.size for array in prepared.expected.values()] + [prepared.inputs["x"].size])
    return 4 * largest + 1000



@dataclass
class HarnessResult:
    """What could be read from result.bin; `problem` says why nothing could."""

    record: dict[str, Any] = field(default_factory=dict)
    arrays: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    problem: str = ""
    _by_run: dict[str, dict[str, np.ndarray]] | None = field(default=None, init=False, repr=False, compare=False)

    def outputs_of(self, run_id: str) -> dict[str, np.ndarray]:
        """output name -> array, of one run (grouped once: every check of every run asks)."""
        if self._by_run is None:
            self._by_run = {}
            for (run, output), array in self.arrays.items():
                self._by_run.setdefault(run, {})[output] = array
        return self._by_run.get(run_id, {})


def parse_result(data: bytes, runs: dict[str, PreparedRun]) -> HarnessResult:
    """Validate and load result.bin. Unknown members are ignored; bad ones are dropped (their checks fail)."""
    if not data:
        return HarnessResult(problem="empty")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, RuntimeError):
        # RuntimeError: zipfile's NotImplementedError for a directory entry that claims a newer zip version.
        return HarnessResult(problem="unreadable")
    if len(members) > MAX_MEMBERS:
        return HarnessResult(problem="unreadable")
    result = HarnessResult()
    view = memoryview(data)
    allowed: dict[str, tuple[set[str], int]] = {}  # run id -> (its outputs, max_elements * 8), once per run
    for member in members:
        name = member.filename
        if not name.endswith(".npy"):
            continue
        key = name[:-4]
        if key == "record.json":
            array = _read_member(archive, view, member, (np.dtype(np.uint8),), RECORD_MAX_BYTES)
            if array is None or array.ndim != 1:
                return HarnessResult(problem="unreadable")
            try:
                record = json.loads(array.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                return HarnessResult(problem="unreadable")
            if not isinstance(record, dict):
                return HarnessResult(problem="unreadable")
            result.record = record
            continue
        run_id, _, output = key.partition("/")
        prepared = runs.get(run_id)
        if prepared is None:
            continue
        if run_id not in allowed:
            allowed[run_id] = (_allowed_outputs(prepared), max_elements(prepared) * 8)
        outputs, byte_cap = allowed[run_id]
        if output not in outputs:
            continue
        array = _read_member(archive, view, member, ARRAY_DTYPES, byte_cap)
        if array is not None:
            result.arrays[(run_id, output)] = array
    if not result.record:
        result.problem = "unreadable"
    return result


def _allowed_outputs(prepared: PreparedRun) -> set[str]:
    return {"out", "dx", "x_after"} | {f"grad/{name}" for name in parameter_names(prepared.run)}


def _read_member(archive: zipfile.ZipFile, view: memoryview, member: zipfile.ZipInfo, dtypes: tuple[np.dtype, ...],
                 max_bytes: int):
    """One .npy member as a writable C-order array of `dtypes[0]`, or None unless it is a plain array of one of
    `dtypes` within `max_bytes` (counted in `dtypes[0]`: a narrower dtype may not hold more elements)."""
    if member.file_size > max_bytes + 4096:
        return None
    raw = _stored_bytes(view, member)
    if raw is None:
        try:
            # In one read, bounded by the size checked above (zipfile stops at file_size and checks the CRC).
            raw = archive.read(member)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, OverflowError):
            return None
    header = _npy_header(raw)
    if header is None:
        return None
    shape, fortran, declared, offset = header
    count = math.prod(shape)
    if declared not in dtypes or len(shape) > 6 or count * dtypes[0].itemsize > max_bytes:
        return None
    if len(raw) - offset != count * declared.itemsize:
        return None  # truncated, or more bytes than the header declares
    array = np.frombuffer(raw, dtype=declared, count=count, offset=offset).reshape(shape, order="F" if fortran else "C")
    return np.array(array, dtype=dtypes[0], order="C")  # a writable copy, C-contiguous, exact for float32


LOCAL_HEADER = struct.Struct(zipfile.structFileHeader)  # a member's local file header, before its name
# Flags zipfile refuses or decrypts (encrypted, compressed patch data, strong encryption): such members go to zipfile.
SPECIAL_FLAGS = 0x1 | 0x20 | 0x40
UTF8_NAME_FLAG = 0x800


def _stored_bytes(view: memoryview, member: zipfile.ZipInfo) -> memoryview | None:
    """The data of a plain stored member, sliced from the file without a copy, when they are exactly what
    `ZipFile.read` would return: the local header at the member's offset has zipfile's signature and the central
    directory's name (decoded as zipfile decodes it), the data after its name and extra field are there in full and
    their CRC-32 is the central directory's. None otherwise: zipfile then reads the member, or refuses it.

    zipfile's read makes these checks too, but its file objects, buffers and reads in small steps cost more than a
    grade's ~90 members of data (issue 14: parsing a grade's 2.3 MB result took 5-7 ms of the worker's ~33 ms of
    CPU per grade, 3-5 ms sliced; half of what is left is the CRC-32).
    """
    start = member.header_offset
    if (member.compress_type != zipfile.ZIP_STORED or member.flag_bits & SPECIAL_FLAGS
            or member.compress_size != member.file_size or start < 0):
        return None
    header = view[start:start + LOCAL_HEADER.size]
    if len(header) != LOCAL_HEADER.size:
        return None
    fields = LOCAL_HEADER.unpack(header)
    signature, flags, name_length, extra_length = fields[0], fields[3], fields[10], fields[11]
    name_start = start + LOCAL_HEADER.size
    try:
        name = bytes(view[name_start:name_start + name_length]).decode("utf-8" if flags & UTF8_NAME_FLAG else "cp437")
    except UnicodeDecodeError:
        return None
    if signature != zipfile.stringFileHeader or name != member.orig_filename:
        return None
    begin = name_start + name_length + extra_length
    data = view[begin:begin + member.file_size]
    if len(data) != member.file_size or zlib.crc32(data) != member.CRC:
        return None
    return data


NPY_MAGIC = b"\x93NUMPY"
# The header numpy writes for a plain array. A header that matches is read here; anything else goes to numpy's own
# parser (ast.literal_eval), which was a quarter of reading a grade's result file.
PLAIN_HEADER = re.compile(rb"\{'descr': '([<>|=][a-z]\d{1,2})', 'fortran_order': (False|True), "
                          rb"'shape': \(((?:\d{1,12}, )*\d{1,12},?|)\), \} *\n")


def _npy_header(raw: bytes | memoryview) -> tuple[tuple[int, ...], bool, np.dtype, int] | None:
    """(shape, Fortran order, dtype, where the data start) of an .npy file's bytes; None if it is not one."""
    version = tuple(raw[6:8])
    if raw[:6] != NPY_MAGIC or version not in ((1, 0), (2, 0)):
        return None
    prefix = 2 if version == (1, 0) else 4  # the header's length, little-endian
    offset = 8 + prefix + int.from_bytes(raw[8:8 + prefix], "little")
    if len(raw) < offset:
        return None
    match = PLAIN_HEADER.fullmatch(raw, 8 + prefix, offset)
    try:
        if match is not None:
            descr, fortran, dims = match.groups()
            return (tuple(int(size) for size in dims.split(b",") if size.strip()), fortran == b"True",
                    np.dtype(descr.decode()), offset)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, declared = read_header(io.BytesIO(raw[8:offset]))
    except (ValueError, TypeError, OverflowError, SyntaxError):
        return None
    if any(not isinstance(size, int) or size < 0 for size in shape):
        return None  # numpy's parser takes (-2, -3): six elements by the size check, then no reshape fits
    return tuple(shape), bool(fortran), declared, offset
