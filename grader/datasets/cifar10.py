"""CIFAR-10: read the official pickled batches or an image-folder archive, write a memory-mappable cache.

The cache is split so that the sandbox mount holds only what training needs:

    <cache>/manifest.json              source fingerprint, class names, counts, sha256 of every file
    <cache>/sandbox/train_images.npy   uint8 (50000, 3, 32, 32), NCHW
    <cache>/sandbox/train_labels.npy   uint8 (50000,)
    <cache>/sandbox/classes.json       the class names, label order
    <cache>/private/test_images.npy    uint8 (10000, 3, 32, 32)  -- never mounted into a sandbox
    <cache>/private/test_labels.npy    uint8 (10000,)            -- never mounted into a sandbox

Test images stay outside too: a submission that finds them can train on them (a file that swapped them in for the
training arrays scored 93.4% "test accuracy"). Every split is stored in a shuffled order fixed by the source's
fingerprint, because sources list images class by class and a split stored that way gives its labels away
(`label = index // per_class`) without any label file.

Sources accepted (`prepare(source=...)`):
- the official distribution `cifar-10-python.tar.gz` or its extracted `cifar-10-batches-py/` directory
  (pickled `data_batch_1..5`, `test_batch`, `batches.meta`), read with a restricted unpickler that never
  imports anything: NumPy's array reconstruction is replaced by inert stand-ins;
- an image-folder archive or directory: `train/<class>/*.jpg|png` and `test/<class>/*`, decoded with Pillow.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)
FORMAT_VERSION = 2  # 2: test images private, splits shuffled
MANIFEST = "manifest.json"
SANDBOX_DIR = "sandbox"
PRIVATE_DIR = "private"
OFFICIAL_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
OFFICIAL_TEST_BATCH = "test_batch"
OFFICIAL_META = "batches.meta"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_MEMBER_BYTES = 256 * 1024**2  # one pickled batch is ~31 MB; anything far larger is not CIFAR-10
MAX_IMAGE_FILE_BYTES = 1024**2  # a 32x32 image file is a few KB


class DatasetError(ValueError):
    """The source is not a CIFAR-10 copy this loader understands; the message says what was expected."""


# ----------------------------------------------------------------------------------------------------------
# Restricted unpickling of the official batches


class _ArrayStub:
    """Stands in for `numpy.ndarray` while unpickling: records shape, dtype and raw bytes, runs nothing."""

    def __init__(self, *args: Any) -> None:
        self.state: tuple | None = None

    def __setstate__(self, state: tuple) -> None:
        self.state = state

    def to_numpy(self) -> np.ndarray:
        if not isinstance(self.state, tuple) or len(self.state) != 5:
            raise DatasetError("malformed array in the pickled batch")
        _version, shape, dtype, is_fortran, raw = self.state
        if not isinstance(dtype, _DtypeStub) or not isinstance(shape, tuple):
            raise DatasetError("malformed array header in the pickled batch")
        if not all(isinstance(n, int) and 0 <= n < 2**31 for n in shape):
            raise DatasetError("malformed array shape in the pickled batch")
        if isinstance(raw, str):  # Python 2 str decoded as latin-1
            raw = raw.encode("latin-1")
        if not isinstance(raw, (bytes, bytearray)):
            raise DatasetError("array data in the pickled batch is not raw bytes")
        array = np.frombuffer(raw, dtype=dtype.numpy_dtype())
        if array.size != int(np.prod(shape)):
            raise DatasetError("array data size does not match its shape")
        return array.reshape(shape, order="F" if is_fortran else "C").copy()


class _DtypeStub:
    """Stands in for `numpy.dtype`; only plain integer dtypes, which is all CIFAR-10 uses."""

    _ALLOWED = {"u1", "i1", "u2", "i2", "i4", "u4", "i8", "u8"}

    def __init__(self, code: Any, align: Any = 0, copy: Any = 1) -> None:
        if isinstance(code, bytes):
            code = code.decode("ascii", "replace")
        if code not in self._ALLOWED:
            raise DatasetError(f"unexpected dtype {code!r} in the pickled batch")
        self.code = code
        self.byteorder = "|"

    def __setstate__(self, state: tuple) -> None:
        if isinstance(state, tuple) and len(state) > 1 and isinstance(state[1], (str, bytes)):
            order = state[1].decode() if isinstance(state[1], bytes) else state[1]
            if order not in ("<", ">", "|", "="):
                raise DatasetError("unexpected byte order in the pickled batch")
            self.byteorder = order

    def numpy_dtype(self) -> np.dtype:
        order = "<" if self.byteorder in ("|", "=") else self.byteorder
        return np.dtype(order + self.code) if self.code not in ("u1", "i1") else np.dtype(self.code)


def _reconstruct(cls: Any, shape: Any, dtype_code: Any) -> _ArrayStub:
    if cls is not _ArrayStub:
        raise DatasetError("unexpected array reconstruction in the pickled batch")
    return _ArrayStub()


def _codecs_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    """Python 3 pickles bytes at protocol 2 as `_codecs.encode(str, 'latin1')`; allow exactly that."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise DatasetError("unexpected encode call in the pickled batch")
    return text.encode("latin-1")


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _ArrayStub,
    ("numpy", "dtype"): _DtypeStub,
    ("_codecs", "encode"): _codecs_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only dicts, lists, tuples, bytes, str, ints and NumPy integer arrays (as inert stand-ins)."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise DatasetError(f"refusing to unpickle {module}.{name}: not part of the CIFAR-10 format") from None


def _to_plain(value: Any) -> Any:
    """Replace array stand-ins by real arrays and bytes keys by str keys."""
    if isinstance(value, _ArrayStub):
        return value.to_numpy()
    if isinstance(value, dict):
        return {(k.decode("latin-1") if isinstance(k, bytes) else k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def load_official_batch(data: bytes) -> dict[str, Any]:
    """Unpickle one official batch (or `batches.meta`) with the restricted unpickler; keys become str."""
    batch = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(batch, dict):
        raise DatasetError("a CIFAR-10 batch must unpickle to a dict")
    return _to_plain(batch)


def _official_arrays(batch: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(f"{name}: 'data' must be a uint8 array of shape (N, 3072)")
    if not isinstance(labels, list) or len(labels) != data.shape[0] or not all(isinstance(v, int) for v in labels):
        raise DatasetError(f"{name}: 'labels' must be a list of N ints")
    label_array = np.asarray(labels, dtype=np.int64)
    if label_array.size and (label_array.min() < 0 or label_array.max() > 9):
        raise DatasetError(f"{name}: labels must be in 0..9")
    return data.reshape(-1, *IMAGE_SHAPE), label_array.astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------
# Sources


@dataclass
class RawSplits:
    train_images: np.ndarray  # uint8 (N, 3, 32, 32)
    train_labels: np.ndarray  # uint8 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: tuple[str, ...]
    source_format: str


class _Source:
    """Uniform read access to a directory or a tar archive: relative POSIX names -> bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: tarfile.TarFile | None = None
        if path.is_dir():
            self.names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
        elif path.is_file() and tarfile.is_tarfile(path):
            self._tar = tarfile.open(path, "r:*")
            self._members = {m.name.lstrip("./"): m for m in self._tar.getmembers() if m.isfile()}
            self.names = sorted(self._members)
        else:
            raise DatasetError(f"{path}: expected a directory or a .tar/.tar.gz archive")

    def read(self, name: str, limit: int) -> bytes:
        if self._tar is None:
            file = self.path / name
            if file.stat().st_size > limit:
                raise DatasetError(f"{name}: file too large ({file.stat().st_size} bytes)")
            return file.read_bytes()
        member = self._members[name]
        if member.size > limit:
            raise DatasetError(f"{name}: member too large ({member.size} bytes)")
        handle = self._tar.extractfile(member)
        assert handle is not None
        return handle.read()

    def read_many(self, names: Iterable[str], limit: int) -> Iterator[bytes]:
        """Members in the order given; a tar archive is read sequentially for speed."""
        wanted = list(names)
        if self._tar is None:
            for name in wanted:
                yield self.read(name, limit)
            return
        order = sorted(range(len(wanted)), key=lambda i: self._members[wanted[i]].offset_data)
        blobs: list[bytes | None] = [None] * len(wanted)
        for i in order:
            blobs[i] = self.read(wanted[i], limit)
        yield from blobs  # type: ignore[misc]

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()


def _find_official_prefix(names: list[str]) -> str | None:
    for name in names:
        if name == "data_batch_1" or name.endswith("/data_batch_1"):
            return name[: -len("data_batch_1")]
    return None


def _read_official(source: _Source, prefix: str) -> RawSplits:
    images, labels = [], []
    for batch_name in OFFICIAL_TRAIN_BATCHES:
        if prefix + batch_name not in source.names:
            raise DatasetError(f"official CIFAR-10 copy without {batch_name}")
        x, y = _official_arrays(load_official_batch(source.read(prefix + batch_name, MAX_MEMBER_BYTES)), batch_name)
        images.append(x)
        labels.append(y)
    if prefix + OFFICIAL_TEST_BATCH not in source.names:
        raise DatasetError("official CIFAR-10 copy without test_batch")
    test_x, test_y = _official_arrays(
        load_official_batch(source.read(prefix + OFFICIAL_TEST_BATCH, MAX_MEMBER_BYTES)), OFFICIAL_TEST_BATCH)
    classes = CLASS_NAMES
    if prefix + OFFICIAL_META in source.names:
        meta = load_official_batch(source.read(prefix + OFFICIAL_META, MAX_MEMBER_BYTES))
        names = meta.get("label_names")
        if isinstance(names, list) and len(names) == 10:
            classes = tuple(n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names)
    return RawSplits(np.concatenate(images), np.concatenate(labels), test_x, test_y, classes, "official-pickle")


def _decode_image(blob: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as image:
        if image.size != (32, 32):
            raise DatasetError(f"expected 32x32 images, found {image.size[0]}x{image.size[1]}")
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return rgb.transpose(2, 0, 1)


def _image_folder_layout(names: list[str]) -> tuple[str, dict[str, dict[str, list[str]]]]:
    """Find `<prefix>train/<class>/<file>` and `<prefix>test/<class>/<file>`; returns prefix and split->class->files."""
    prefix = None
    for name in names:
        parts = name.split("/")
        if len(parts) >= 3 and parts[-3] in ("train", "test") and name.lower().endswith(IMAGE_SUFFIXES):
            prefix = "/".join(parts[:-3])
            prefix = prefix + "/" if prefix else ""
            break
    if prefix is None:
        raise DatasetError("no train/<class>/<image> files found: expected the official pickled batches "
                           "or an image-folder layout")
    layout: dict[str, dict[str, list[str]]] = {"train": {}, "test": {}}
    for name in names:
        if not name.startswith(prefix) or not name.lower().endswith(IMAGE_SUFFIXES):
            continue
        parts = name[len(prefix):].split("/")
        if len(parts) == 3 and parts[0] in layout:
            layout[parts[0]].setdefault(parts[1], []).append(name)
    return prefix, layout


def _class_order(found: set[str]) -> tuple[str, ...]:
    if found == set(CLASS_NAMES):
        return CLASS_NAMES
    return tuple(sorted(found))


def _read_image_folder(source: _Source, workers: int) -> RawSplits:
    _prefix, layout = _image_folder_layout(source.names)
    if not layout["train"] or not layout["test"]:
        raise DatasetError("image-folder source needs both train/<class>/ and test/<class>/ directories")
    classes = _class_order(set(layout["train"]))
    if set(layout["test"]) - set(classes):
        raise DatasetError(f"test classes {sorted(set(layout['test']) - set(classes))} are not among the train classes")
    splits = {}
    for split in ("train", "test"):
        files, labels = [], []
        for label, class_name in enumerate(classes):
            for name in sorted(layout[split].get(class_name, [])):
                files.append(name)
                labels.append(label)
        blobs = list(source.read_many(files, MAX_IMAGE_FILE_BYTES))
        images = np.empty((len(files), *IMAGE_SHAPE), dtype=np.uint8)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # Pillow releases the GIL while decoding
            for i, image in enumerate(pool.map(_decode_image, blobs, chunksize=256)):
                images[i] = image
        splits[split] = (images, np.asarray(labels, dtype=np.uint8))
    return RawSplits(*splits["train"], *splits["test"], classes, "image-folder")


def read_source(path: Path, *, workers: int = 2) -> RawSplits:
    """Read any supported CIFAR-10 source into arrays (uint8 NCHW images, uint8 labels)."""
    source = _Source(Path(path))
    try:
        prefix = _find_official_prefix(source.names)
        if prefix is not None:
            return _read_official(source, prefix)
        return _read_image_folder(source, workers)
    finally:
        source.close()


# ----------------------------------------------------------------------------------------------------------
# The prepared cache


@dataclass(frozen=True)
class PreparedCifar10:
    """A prepared cache on disk. `sandbox_dir` is what a training job mounts; the test split stays outside."""

    root: Path
    manifest: dict[str, Any]

    @property
    def sandbox_dir(self) -> Path:
        return self.root / SANDBOX_DIR

    @property
    def test_labels_path(self) -> Path:
        return self.root / PRIVATE_DIR / "test_labels.npy"

    @property
    def test_images_path(self) -> Path:
        return self.root / PRIVATE_DIR / "test_images.npy"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.manifest["classes"])

    def train_images(self) -> np.ndarray:
        return np.load(self.sandbox_dir / "train_images.npy", mmap_mode="r", allow_pickle=False)

    def train_labels(self) -> np.ndarray:
        return np.load(self.sandbox_dir / "train_labels.npy", allow_pickle=False)

    def test_images(self) -> np.ndarray:
        return np.load(self.test_images_path, mmap_mode="r", allow_pickle=False)

    def test_labels(self) -> np.ndarray:
        return np.load(self.test_labels_path, allow_pickle=False)


_CACHE_FILES = {
    "train_images": f"{SANDBOX_DIR}/train_images.npy",
    "train_labels": f"{SANDBOX_DIR}/train_labels.npy",
    "test_images": f"{PRIVATE_DIR}/test_images.npy",
    "classes": f"{SANDBOX_DIR}/classes.json",
    "test_labels": f"{PRIVATE_DIR}/test_labels.npy",
}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def source_fingerprint(path: Path) -> dict[str, Any]:
    """Identity of a source: sha256 of an archive, or of the sorted (name, size) list of a directory's files."""
    path = Path(path).resolve()
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{file.stat().st_size}\n".encode())
        return {"path": str(path), "kind": "directory", "sha256": digest.hexdigest()}
    if not path.is_file():
        raise DatasetError(f"{path}: no such file or directory")
    return {"path": str(path), "kind": "file", "size": path.stat().st_size, "sha256": _sha256_file(path)}


def _manifest_matches(root: Path, manifest: dict[str, Any], fingerprint: dict[str, Any] | None, verify: bool) -> bool:
    if manifest.get("format_version") != FORMAT_VERSION:
        return False
    if fingerprint is not None and manifest.get("source", {}).get("sha256") != fingerprint["sha256"]:
        return False
    for key, relative in _CACHE_FILES.items():
        entry = manifest.get("files", {}).get(key)
        file = root / relative
        if not entry or not file.is_file() or file.stat().st_size != entry["bytes"]:
            return False
        if verify and _sha256_file(file) != entry["sha256"]:
            return False
    return True


def open_prepared(root: Path, *, verify: bool = False) -> PreparedCifar10:
    """Open an existing cache; `verify` re-hashes every file against the manifest."""
    root = Path(root)
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise DatasetError(f"no prepared CIFAR-10 cache at {root} (run `grader dataset prepare`)") from error
    if not _manifest_matches(root, manifest, None, verify):
        raise DatasetError(f"the CIFAR-10 cache at {root} is incomplete or modified (run `grader dataset prepare --force`)")
    return PreparedCifar10(root, manifest)


def _write_npy(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


def shuffled(images: np.ndarray, labels: np.ndarray, key: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays in one permutation seeded by `key`, so the stored order says nothing about the labels."""
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    order = np.random.default_rng(seed).permutation(len(labels))
    return images[order], labels[order]


def prepare(source: Path, dest: Path, *, force: bool = False, workers: int = 2) -> tuple[PreparedCifar10, bool]:
    """Prepare the cache at `dest` from `source` unless a matching one exists (one process at a time per cache).

    Returns:
        (the prepared cache, True if it was written now / False if an existing one was reused).
    """
    import fcntl

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Workers that start together must not rebuild the cache under each other's running jobs.
    with open(dest.parent / f".{dest.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prepare_locked(Path(source), dest, force=force, workers=workers)


def _prepare_locked(source: Path, dest: Path, *, force: bool, workers: int) -> tuple[PreparedCifar10, bool]:
    fingerprint = source_fingerprint(source)
    manifest_path = dest / MANIFEST
    if not force and manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
        if _manifest_matches(dest, manifest, fingerprint, verify=True):
            return PreparedCifar10(dest, manifest), False

    splits = read_source(source, workers=workers)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cifar10-", dir=dest.parent))
    try:
        (staging / SANDBOX_DIR).mkdir()
        (staging / PRIVATE_DIR).mkdir()
        for split in ("train", "test"):
            images, labels = shuffled(getattr(splits, f"{split}_images"), getattr(splits, f"{split}_labels"),
                                      f"{fingerprint['sha256']}:{split}")
            _write_npy(staging / _CACHE_FILES[f"{split}_images"], images)
            _write_npy(staging / _CACHE_FILES[f"{split}_labels"], labels)
        (staging / _CACHE_FILES["classes"]).write_text(json.dumps(list(splits.classes)))
        files = {}
        for key, relative in _CACHE_FILES.items():
            file = staging / relative
            files[key] = {"path": relative, "bytes": file.stat().st_size, "sha256": _sha256_file(file)}
        manifest = {
            "format_version": FORMAT_VERSION,
            "dataset": "cifar10",
            "source": fingerprint,
            "source_format": splits.source_format,
            "classes": list(splits.classes),
            "counts": {"train": int(splits.train_labels.size), "test": int(splits.test_labels.size)},
            "image_layout": "NCHW uint8",
            "order": "shuffled (seeded by the source sha256 and the split name)",
            "files": files,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        for directory in (staging / SANDBOX_DIR, staging / PRIVATE_DIR):
            os.chmod(directory, 0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
        os.chmod(dest, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PreparedCifar10(dest, manifest), True
