"""`grader dataset prepare` on tiny sources built here: an image-folder archive and the official pickled format."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grader.cli import main as grader_main
from grader.datasets.cifar10 import (CLASS_NAMES, DatasetError, load_official_batch, open_prepared, prepare,
                                     read_source)


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def image_folder_archive(tmp_path: Path) -> tuple[Path, dict]:
    """Two train and one test PNG per class (lossless, so pixels can be compared exactly)."""
    archive = tmp_path / "tiny-images.tar.gz"
    expected: dict = {"train": [], "test": []}
    with tarfile.open(archive, "w:gz") as tar:
        for split, per_class in (("train", 2), ("test", 1)):
            for label, name in enumerate(CLASS_NAMES):
                for k in range(per_class):
                    array = _image(label * 10 + k + (100 if split == "test" else 0))
                    _add(tar, f"{split}/{name}/{k:04d}.png", _png(array))
                    expected[split].append((array, label))
    return archive, expected


def _official_batch(images: np.ndarray, labels: list[int]) -> bytes:
    batch = {b"batch_label": b"tiny batch", b"labels": labels, b"data": images.reshape(len(labels), 3072),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(labels))]}
    return pickle.dumps(batch, protocol=2)


@pytest.fixture
def official_archive(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(60, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, size=60).tolist()
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for i in range(5):
            _add(tar, f"cifar-10-batches-py/data_batch_{i + 1}",
                 _official_batch(images[i * 10:(i + 1) * 10], labels[i * 10:(i + 1) * 10]))
        _add(tar, "cifar-10-batches-py/test_batch", _official_batch(images[50:], labels[50:]))
        meta = {b"label_names": [n.encode() for n in CLASS_NAMES], b"num_cases_per_batch": 10, b"num_vis": 3072}
        _add(tar, "cifar-10-batches-py/batches.meta", pickle.dumps(meta, protocol=2))
        _add(tar, "cifar-10-batches-py/readme.html", b"<html></html>")
    return archive, images, np.asarray(labels)


def _pairs(images: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, int]]:
    """(image bytes, label) pairs in a canonical order, to compare splits whatever order they are stored in."""
    return sorted((np.ascontiguousarray(image).tobytes(), int(label)) for image, label in zip(images, labels))


def test_image_folder_archive_is_prepared_and_split(image_folder_archive, tmp_path):
    archive, expected = image_folder_archive
    prepared, written = prepare(archive, tmp_path / "cache")
    assert written
    assert prepared.classes == CLASS_NAMES
    train, test = prepared.train_images(), prepared.test_images()
    assert train.shape == (20, 3, 32, 32) and train.dtype == np.uint8
    assert test.shape == (10, 3, 32, 32)
    for split, images, labels in (("train", train, prepared.train_labels()), ("test", test, prepared.test_labels())):
        assert _pairs(images, labels) == _pairs(np.stack([a.transpose(2, 0, 1) for a, _ in expected[split]]),
                                                np.array([label for _, label in expected[split]]))
    # The sandbox mount holds what training needs and nothing of the test split.
    assert sorted(p.name for p in prepared.sandbox_dir.iterdir()) == [
        "classes.json", "train_images.npy", "train_labels.npy"]
    assert not prepared.test_labels_path.is_relative_to(prepared.sandbox_dir)
    assert not prepared.test_images_path.is_relative_to(prepared.sandbox_dir)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 20, "test": 10}
    assert set(manifest["files"]) == {"train_images", "train_labels", "test_images", "test_labels", "classes"}


def test_no_split_is_stored_in_label_order(tmp_path):
    """The archive lists images class by class; stored that way, a split's labels would be `index // per_class`."""
    from tests.fixtures.cifar10 import write_tiny_archive

    prepared, _ = prepare(write_tiny_archive(tmp_path / "tiny.tar.gz", train_per_class=20, test_per_class=20),
                          tmp_path / "cache")
    for labels in (prepared.train_labels(), prepared.test_labels()):
        by_position = np.arange(len(labels)) * 10 // len(labels)
        assert np.mean(labels == by_position) < 0.3, labels
        assert np.mean(labels == np.sort(labels)) < 0.3
        # Every class still present, in equal numbers: the order changed, not the content.
        assert np.bincount(labels, minlength=10).tolist() == [20] * 10
    # The order is fixed by the source: preparing again gives the same files.
    again, _ = prepare(tmp_path / "tiny.tar.gz", tmp_path / "cache2")
    np.testing.assert_array_equal(again.test_labels(), prepared.test_labels())


def test_second_prepare_reuses_the_cache_and_detects_changes(image_folder_archive, tmp_path):
    archive, _ = image_folder_archive
    cache = tmp_path / "cache"
    prepare(archive, cache)
    stamp = (cache / "sandbox" / "train_images.npy").stat().st_mtime_ns
    _, written = prepare(archive, cache)
    assert not written
    assert (cache / "sandbox" / "train_images.npy").stat().st_mtime_ns == stamp
    # A modified cache file fails verification and is rebuilt.
    with open(cache / "private" / "test_labels.npy", "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)[0]
        handle.seek(-1, 2)
        handle.write(bytes([last ^ 1]))  # always a change (writing a fixed byte missed a last label that was it)
    with pytest.raises(DatasetError):
        open_prepared(cache, verify=True)
    _, written = prepare(archive, cache)
    assert written
    open_prepared(cache, verify=True)


def test_official_archive_and_directory(official_archive, tmp_path):
    archive, images, labels = official_archive
    prepared, _ = prepare(archive, tmp_path / "cache")
    assert _pairs(prepared.train_images(), prepared.train_labels()) == _pairs(images[:50], labels[:50])
    assert _pairs(prepared.test_images(), prepared.test_labels()) == _pairs(images[50:], labels[50:])
    assert prepared.manifest["source_format"] == "official-pickle"
    extracted = tmp_path / "extracted"
    with tarfile.open(archive) as tar:
        tar.extractall(extracted, filter="data")
    splits = read_source(extracted / "cifar-10-batches-py")
    np.testing.assert_array_equal(splits.train_images, images[:50])
    assert splits.classes == CLASS_NAMES


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/pwned-by-cifar-pickle",))


def test_restricted_unpickler_refuses_foreign_globals(tmp_path):
    with pytest.raises(DatasetError, match="refusing to unpickle posix.system"):
        load_official_batch(pickle.dumps({b"data": _Exploit()}, protocol=2))
    assert not Path("/tmp/pwned-by-cifar-pickle").exists()
    # Even NumPy's own reconstruction may only rebuild plain integer arrays.
    with pytest.raises(DatasetError):
        load_official_batch(pickle.dumps({b"data": np.zeros(3, dtype=object)}, protocol=2))
    with pytest.raises(DatasetError):
        load_official_batch(pickle.dumps(np.float64(1.0), protocol=2))


def test_malicious_batch_inside_an_archive_is_refused(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "cifar-10-batches-py/data_batch_1", pickle.dumps({b"data": _Exploit()}, protocol=2))
    with pytest.raises(DatasetError, match="refusing"):
        prepare(archive, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_cli_prepare_and_reuse(image_folder_archive, tmp_path, capsys):
    archive, _ = image_folder_archive
    assert grader_main(["dataset", "prepare", "--source", str(archive), "--dest", str(tmp_path / "c")]) == 0
    assert "prepared CIFAR-10 cache" in capsys.readouterr().out
    assert grader_main(["dataset", "prepare", "--source", str(archive), "--dest", str(tmp_path / "c")]) == 0
    assert "reused" in capsys.readouterr().out
    assert grader_main(["dataset", "prepare", "--source", str(tmp_path / "missing.tar.gz"),
                        "--dest", str(tmp_path / "d")]) == 2


@pytest.mark.parametrize("protocol", [2, 3])
def test_python2_era_module_names_are_understood(protocol):
    """The official files were written by Python 2 NumPy: `numpy.core.multiarray._reconstruct`, byte-string keys."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    blob = pickle.dumps({b"data": data, b"labels": [3, 7]}, protocol=protocol)
    assert b"numpy._core.multiarray" in blob
    blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    batch = load_official_batch(blob)
    np.testing.assert_array_equal(batch["data"], data)
    assert batch["labels"] == [3, 7]
