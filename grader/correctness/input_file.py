"""The correctness job's input arrays, arrays.npz, with an index that lets the harness read them without a zip reader.

The harness runs in every job; numpy.load there parsed the zip and ~100 .npy headers (and imported zipfile, with
pathlib, shutil, bz2 and lzma) for each job. The file is written here once per seed and its index gives, for every
member, where its data start, its dtype and its shape, so the harness slices one read of the file. The file stays
an ordinary .npz (numpy.load reads it) and carries inputs only; nothing read back from the sandbox relies on it.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

LOCAL_HEADER_SIZE = 30  # fixed part of a zip local file header, before the name and the extra field


def npz_with_index(arrays: dict[str, np.ndarray]) -> tuple[bytes, dict[str, list]]:
    """(the .npz of `arrays`, key -> [offset of the data in the file, dtype string, shape])."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    index = {}
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for member in archive.infolist():
            if member.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{member.filename} is compressed; the harness reads stored members only")
            start = member.header_offset
            name_length, extra_length = struct.unpack("<HH", data[start + 26:start + LOCAL_HEADER_SIZE])
            npy_start = start + LOCAL_HEADER_SIZE + name_length + extra_length
            npy = io.BytesIO(data[npy_start:npy_start + member.file_size])
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(npy)]
            shape, fortran_order, dtype = read_header(npy)
            key = member.filename.removesuffix(".npy")
            if fortran_order or dtype.hasobject or arrays[key].shape != shape:
                raise ValueError(f"{key}: the harness reads plain C-order arrays only")
            index[key] = [npy_start + npy.tell(), dtype.str, [int(size) for size in shape]]
    return data, index
