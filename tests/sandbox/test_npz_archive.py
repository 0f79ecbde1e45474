"""The correctness harness's own .npz writer (sandbox/harness/npz_archive.py) and the index of its input file
(grader/correctness/input_file.py): what they write must be what numpy and zipfile read."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from grader.correctness.input_file import npz_with_index
from tests.sandbox.helpers import load_harness_module


@pytest.fixture(scope="module")
def npz_archive():
    return load_harness_module("npz_archive.py", "npz_archive")


ARRAYS = {
    "conv2d.k3/out": np.arange(2 * 4 * 5 * 6, dtype=np.float64).reshape(2, 4, 5, 6),
    "simplecnn.one_image/grad/fc1.weight": np.linspace(-1, 1, 4096 * 3, dtype=np.float32).reshape(4096, 3),
    "flatten.batch2/dx": np.asfortranarray(np.ones((3, 2))),  # written in C order, read back equal
    "scalar": np.array(2.5),
    "empty": np.zeros((0, 3)),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_npy_parts_are_numpys_own_bytes(npz_archive, name):
    array = np.ascontiguousarray(ARRAYS[name])
    expected = io.BytesIO()
    np.lib.format.write_array(expected, array)
    assert b"".join(npz_archive.npy_parts(array)) == expected.getvalue()


def test_a_rewrite_is_a_valid_npz_with_the_latest_record(npz_archive):
    archive = npz_archive.NpzArchive()
    for name, array in ARRAYS.items():
        archive.add(f"{name}.npy", npz_archive.npy_parts(array))
    handle = io.BytesIO(b"longer leftovers of an earlier write " * 10000)
    for record in (b'{"runs": {}}', b'{"runs": {"a": 1}}'):
        archive.write(handle, {"record.json.npy": npz_archive.npy_parts(np.frombuffer(record, dtype=np.uint8))})
    data = handle.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as checked:
        assert checked.testzip() is None  # every CRC matches
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    assert sorted(loaded.files) == sorted([*ARRAYS, "record.json"])
    for name, array in ARRAYS.items():
        assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array)
    assert loaded["record.json"].tobytes() == b'{"runs": {"a": 1}}'


def test_the_input_index_points_at_each_arrays_data():
    arrays = {name: np.ascontiguousarray(array) for name, array in ARRAYS.items()}
    data, index = npz_with_index(arrays)
    loaded = np.load(io.BytesIO(data), allow_pickle=False)
    assert sorted(index) == sorted(loaded.files) == sorted(arrays)
    for name, (offset, dtype, shape) in index.items():
        count = int(np.prod(shape))
        sliced = np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)
        assert sliced.dtype == arrays[name].dtype and np.array_equal(sliced, arrays[name])


def test_the_input_index_refuses_what_the_harness_cannot_slice():
    with pytest.raises(ValueError):
        npz_with_index({"x": np.asfortranarray(np.ones((3, 2)))})
