"""The trusted side's reading of result.bin: no pickle, float64 or float32 only (read as float64), sizes and shapes
checked, junk ignored."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from grader.correctness import result_file
from grader.correctness.result_file import max_elements, parse_result
from grader.stages.correctness import prepared_runs


@pytest.fixture(scope="module")
def runs(spec):
    return {prepared.run.id: prepared for prepared in prepared_runs(spec.correctness.seed)}


def npz(record, **arrays) -> bytes:
    buffer = io.BytesIO()
    members = dict(arrays)
    if record is not None:
        members["record.json"] = np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)
    np.savez(buffer, **members)
    return buffer.getvalue()


RECORD = {"format": 1, "import": {"status": "ok"}, "classes": {}, "runs": {}}


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04" + b"\x00" * 100])
def test_garbage_is_unreadable(runs, data):
    assert parse_result(data, runs).problem in ("empty", "unreadable")


def test_record_must_be_a_json_object(runs):
    assert parse_result(npz(None), runs).problem == "unreadable"
    buffer = io.BytesIO()
    np.savez(buffer, **{"record.json": np.frombuffer(b"[1, 2]", dtype=np.uint8)})
    assert parse_result(buffer.getvalue(), runs).problem == "unreadable"


def test_valid_arrays_are_kept_and_others_dropped(runs):
    data = npz(RECORD, **{
        "conv2d.no_bias/out": np.ones((2, 4, 5, 6)),  # kept
        "conv2d.no_bias/dx": np.ones((2, 3, 5, 6), dtype=np.float16),  # wrong dtype: dropped
        "conv2d.no_bias/grad/weight": np.ones((4, 3, 3, 3), dtype=np.int64),  # wrong dtype: dropped
        "conv2d.no_bias/grad/bias": np.ones(4),  # no_bias has no bias gradient: dropped
        "conv2d.unknown/out": np.ones(3),  # unknown run: ignored
        "flatten.batch2/out": np.ones(10**6),  # over the size cap of that run: dropped
        "flatten.batch2/dx": np.array([1 + 2j]),  # complex: dropped
    })
    result = parse_result(data, runs)
    assert result.problem == ""
    assert set(result.arrays) == {("conv2d.no_bias", "out")}
    assert type(result.arrays[("conv2d.no_bias", "out")]) is np.ndarray


def test_pickled_members_are_never_loaded(runs):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("record.json.npy", "w") as handle:
            np.lib.format.write_array(handle, np.frombuffer(json.dumps(RECORD).encode(), dtype=np.uint8))
        with archive.open("conv2d.no_bias/out.npy", "w") as handle:
            np.lib.format.write_array(handle, np.array([object()], dtype=object), allow_pickle=True)
    result = parse_result(buffer.getvalue(), runs)
    assert result.arrays == {}


def test_declared_shape_is_checked_before_reading(runs):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**9,)})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("record.json.npy", "w") as handle:
            np.lib.format.write_array(handle, np.frombuffer(json.dumps(RECORD).encode(), dtype=np.uint8))
        archive.writestr("conv2d.no_bias/out.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\x00" * 64)
    assert parse_result(buffer.getvalue(), runs).arrays == {}


def test_too_many_members_is_unreadable(runs):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for index in range(1001):
            archive.writestr(f"m{index}.npy", b"")
    assert parse_result(buffer.getvalue(), runs).problem == "unreadable"


def _with_member(name: str, payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("record.json.npy", "w") as handle:
            np.lib.format.write_array(handle, np.frombuffer(json.dumps(RECORD).encode(), dtype=np.uint8))
        archive.writestr(name, payload)
    return buffer.getvalue()


def test_data_must_be_exactly_what_the_header_declares_and_fortran_order_is_honoured(runs):
    out = np.arange(2 * 4 * 5 * 6, dtype=np.float64).reshape(2, 4, 5, 6)
    member = io.BytesIO()
    np.lib.format.write_array(member, np.asfortranarray(out))
    raw = member.getvalue()
    kept = parse_result(_with_member("conv2d.no_bias/out.npy", raw), runs).arrays[("conv2d.no_bias", "out")]
    assert np.array_equal(kept, out) and kept.flags.c_contiguous and kept.flags.writeable
    for payload in (raw[:-8], raw + b"\x00" * 8):  # truncated, or longer than declared
        assert parse_result(_with_member("conv2d.no_bias/out.npy", payload), runs).arrays == {}


@pytest.mark.parametrize("header", [
    "{'fortran_order': False, 'shape': (2, 4, 5, 6), 'descr': '<f8'}",  # keys in another order
    "{'descr':'<f8','fortran_order':False,'shape':(2,4,5,6)}",  # no spaces
])
def test_a_header_numpy_writes_differently_is_read_by_numpys_own_parser(runs, header):
    """The fast path knows only numpy's own layout of a header; any other valid one must still be read the same."""
    out = np.arange(2 * 4 * 5 * 6, dtype=np.float64).reshape(2, 4, 5, 6)
    text = header.encode() + b" " * ((-(10 + len(header) + 1)) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + out.tobytes()
    kept = parse_result(_with_member("conv2d.no_bias/out.npy", raw), runs).arrays[("conv2d.no_bias", "out")]
    assert np.array_equal(kept, out)
    broken = raw.replace(b"'<f8'", b"'<f8")
    assert parse_result(_with_member("conv2d.no_bias/out.npy", broken), runs).arrays == {}


def test_float32_members_are_read_as_exact_float64_copies(runs):
    """The harness hands back float32 arrays as they are (float32 runs compute in it): the grader's float64 copy must
    hold the same numbers, NaN, infinities and signed zeros included."""
    dx = np.random.default_rng(0).standard_normal((2, 3, 5, 6)).astype(np.float32)
    dx.flat[:4] = [np.nan, np.inf, -np.inf, -0.0]
    result = parse_result(npz(RECORD, **{"conv2d.no_bias/dx": dx}), runs)
    kept = result.arrays[("conv2d.no_bias", "dx")]
    assert kept.dtype == np.float64 and kept.flags.c_contiguous and kept.flags.writeable
    assert np.array_equal(kept, dx.astype(np.float64), equal_nan=True) and np.signbit(kept.flat[3])


def test_the_size_cap_counts_elements_whatever_the_dtype(runs):
    """A float32 member may not hold more elements than a float64 one would."""
    cap = parse_result(npz(RECORD, **{"flatten.batch2/out": np.ones(10)}), runs)
    assert ("flatten.batch2", "out") in cap.arrays
    too_many = max_elements(runs["flatten.batch2"]) + 1
    assert parse_result(npz(RECORD, **{"flatten.batch2/out": np.ones(too_many, np.float32)}), runs).arrays == {}


@pytest.mark.parametrize("dtype", [">f4", ">f8", "<i8", "<f2"])
def test_only_little_endian_float64_and_float32_are_read(runs, dtype):
    member = io.BytesIO()
    np.lib.format.write_array(member, np.zeros((2, 4, 5, 6), dtype=dtype))
    assert parse_result(_with_member("conv2d.no_bias/out.npy", member.getvalue()), runs).arrays == {}


def test_a_negative_dimension_is_dropped_not_a_crash(runs):
    """numpy's own header parser takes (-2, -3, -5, -4): 120 elements by the size check, then no reshape fits."""
    out = np.arange(2 * 3 * 5 * 4, dtype=np.float64)  # exactly the bytes the (negative) header declares
    header = "{'descr':'<f8','fortran_order':False,'shape':(-2,-3,-5,-4)}"  # not numpy's layout: its parser reads it
    text = header.encode() + b" " * ((-(10 + len(header) + 1)) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + out.tobytes()
    result = parse_result(_with_member("conv2d.no_bias/out.npy", raw), runs)
    assert not result.problem and result.arrays == {}


def test_a_directory_entry_claiming_a_newer_zip_version_is_unreadable_not_a_crash(runs):
    """zipfile raises NotImplementedError for it: the worker took that for a bug in the grader and ended the run
    unscored, where a hostile result file is the student's "unreadable" result."""
    data = npz(RECORD)
    entry = data.index(b"PK\x01\x02")
    newer = data[:entry + 6] + bytes([99, 0]) + data[entry + 8:]  # "version needed to extract": 9.9
    assert parse_result(newer, runs).problem == "unreadable"


def _stored(payload: bytes, **arrays) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("record.json.npy", "w") as handle:
            np.lib.format.write_array(handle, np.frombuffer(json.dumps(RECORD).encode(), dtype=np.uint8))
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, array)
            archive.writestr(name, member.getvalue(), compress_type=zipfile.ZIP_DEFLATED if payload else None)
    return buffer.getvalue()


OUT = np.arange(2 * 4 * 5 * 6, dtype=np.float64).reshape(2, 4, 5, 6)


def test_a_compressed_member_is_read_like_a_stored_one(runs):
    for compressed in (b"", b"deflate"):
        result = parse_result(_stored(compressed, **{"conv2d.no_bias/out.npy": OUT}), runs)
        assert np.array_equal(result.arrays[("conv2d.no_bias", "out")], OUT)


def test_a_member_whose_crc_or_local_name_disagrees_with_the_directory_is_dropped(runs):
    data = _stored(b"", **{"conv2d.no_bias/out.npy": OUT})
    data_start = data.index(b"\x93NUMPY", data.index(b"conv2d.no_bias/out.npy"))
    flipped = data[:data_start + 200] + bytes([data[data_start + 200] ^ 1]) + data[data_start + 201:]
    assert parse_result(flipped, runs).arrays == {}  # CRC-32 no longer matches
    renamed = data.replace(b"conv2d.no_bias/out.npy", b"conv2d.no_bias/dx.npy\0", 1)  # the local header's only
    assert parse_result(renamed, runs).arrays == {} and parse_result(renamed, runs).record == RECORD


def test_slicing_stored_members_reads_exactly_what_zipfile_reads(runs, monkeypatch):
    """Damaged files, headers above all, come out the same with and without the fast path (`_stored_bytes`)."""
    rng = np.random.default_rng(14)
    original = _stored(b"", **{"conv2d.no_bias/out.npy": OUT, "conv2d.no_bias/dx.npy": OUT[:, :3].astype(np.float32),
                               "flatten.batch2/out.npy": np.ones(10)})
    headers = [offset for start in range(len(original)) if original.startswith(b"PK", start)
               for offset in range(start, min(start + 80, len(original)))]
    samples = []
    for _ in range(300):
        data = bytearray(original)
        for _ in range(int(rng.integers(1, 4))):
            where = int(rng.choice(headers)) if rng.random() < 0.9 else int(rng.integers(len(data)))
            data[where] = int(rng.integers(256))
        samples.append(bytes(data[:int(rng.integers(len(data)))] if rng.random() < 0.05 else data))
    fast = [parse_result(data, runs) for data in samples]
    monkeypatch.setattr(result_file, "_stored_bytes", lambda view, member: None)
    slow = [parse_result(data, runs) for data in samples]
    assert sum(bool(result.arrays) for result in fast) > 30  # many damaged files still had members to read
    for one, other in zip(fast, slow):
        assert (one.problem, one.record, sorted(one.arrays)) == (other.problem, other.record, sorted(other.arrays))
        assert all(np.array_equal(one.arrays[key], other.arrays[key], equal_nan=True) for key in one.arrays)
