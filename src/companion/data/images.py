"""Image datasets from their official file formats (or the offline copies), decoded once.

Each dataset has an ordered list of sources; the loader uses the first one whose files are in
the data directory, so an official file always wins over an offline copy:

========= ================================================== ====================================
dataset   official files                                     offline copy
========= ================================================== ====================================
mnist     the four ``*-ubyte.gz`` idx files                  ``mnist.npz`` (Keras layout, lossless)
cifar10   ``cifar-10-batches-py/``, ``cifar-10-python.tar.gz`` ``cifar10_jpeg.npz`` (JPEG q75, lossy)
cifar100  ``cifar-100-python/``, ``cifar-100-python.tar.gz`` none
svhn      ``train_32x32.mat``, ``test_32x32.mat``            none
========= ================================================== ====================================

Decoded arrays are cached as uint8 ``.npy`` files (labels int64) under ``<data dir>/cache/``,
or, where the data directory is read-only, under ``$XDG_CACHE_HOME/companion`` (default
``~/.cache/companion``) or a temporary folder. A cache entry is keyed by the source files'
paths, sizes and modification times, so a replaced file is decoded afresh. Caching never
makes a load fail: an unwritable cache is skipped.

The CIFAR pickles are read with ``pickle``, as the official format requires; only load
archives you trust (``companion data fetch`` checks their SHA-256).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not in the data directory (the message says how to get them)."""


class CorruptDatasetError(ValueError):
    """A dataset's file is present but cannot be decoded (truncated or corrupt): the message
    names the file and the command that fetches a good copy."""


@dataclass
class Split:
    """One decoded split: uint8 images (N, C, H, W) and label arrays with their class names."""

    x: np.ndarray
    labels: dict[str, np.ndarray]        # label kind ("label"; "fine"/"coarse") -> int64 (N,)
    classes: dict[str, list[str]]        # label kind -> class names


Reader = Callable[[Path, str], dict[str, Split]]


@dataclass(frozen=True)
class Source:
    """One way to obtain a dataset: the files it needs per split and how to decode them."""

    dataset: str
    key: str                                  # short id, also the cache folder prefix
    files: dict[str, tuple[str, ...]]         # split -> files or folders in the data dir
    description: str                          # what Dataset.source says
    official: bool
    read: Reader                              # (data dir, split) -> {split: Split, ...}

    def available(self, data_dir: Path, split: str) -> bool:
        return split in self.files and all((data_dir / f).exists() for f in self.files[split])


# ----------------------------------------------------------------------------- MNIST

_IDX_TYPES = {0x08: np.uint8}


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip-compressed): 2 zero bytes, type byte, ndim byte, big-endian dims, data."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code not in _IDX_TYPES:
        raise ValueError(f"{path.name}: not an unsigned-byte idx file (magic {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    array = np.frombuffer(data, dtype=_IDX_TYPES[dtype_code], offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path.name}: header says {shape}, found {array.size} values")
    return array.reshape(shape).copy()  # frombuffer views of bytes are read-only


_DIGIT_NAMES = [str(k) for k in range(10)]

MNIST_IDX = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _read_mnist_idx(data_dir: Path, split: str) -> dict[str, Split]:
    images, labels = (read_idx(data_dir / name) for name in MNIST_IDX[split])
    return {split: Split(images[:, None], {"label": labels.astype(np.int64)},
                         {"label": _DIGIT_NAMES})}


def _read_mnist_npz(data_dir: Path, split: str) -> dict[str, Split]:
    with np.load(data_dir / "mnist.npz") as archive:
        return {s: Split(archive[f"x_{s}"][:, None], {"label": archive[f"y_{s}"].astype(np.int64)},
                         {"label": _DIGIT_NAMES}) for s in ("train", "test")}


# ----------------------------------------------------------------------------- CIFAR

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
_CIFAR_MEMBERS = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta"},
    "cifar100": {"train": ["train"], "test": ["test"], "meta": "meta"},
}


def _unpickle(blob: bytes) -> dict:
    return pickle.loads(blob, encoding="bytes")


def _decode_cifar(dataset: str, blobs: dict[str, bytes]) -> dict[str, Split]:
    """CIFAR python pickles (by member name) -> splits; rows are 3072 bytes, channel-major."""
    members = _CIFAR_MEMBERS[dataset]
    meta = _unpickle(blobs[members["meta"]])
    if dataset == "cifar10":
        kinds = {"label": b"labels"}
        names = {"label": [n.decode() for n in meta[b"label_names"]]}
    else:
        kinds = {"fine": b"fine_labels", "coarse": b"coarse_labels"}
        names = {kind: [n.decode() for n in meta[key]]
                 for kind, key in (("fine", b"fine_label_names"),
                                   ("coarse", b"coarse_label_names"))}
    splits = {}
    for split in ("train", "test"):
        batches = [_unpickle(blobs[name]) for name in members[split]]
        x = np.concatenate([np.asarray(b[b"data"], dtype=np.uint8) for b in batches])
        labels = {kind: np.concatenate([np.asarray(b[key], dtype=np.int64) for b in batches])
                  for kind, key in kinds.items()}
        splits[split] = Split(x.reshape(-1, 3, 32, 32), labels, names)
    return splits


def _cifar_member_names(dataset: str) -> list[str]:
    members = _CIFAR_MEMBERS[dataset]
    return [*members["train"], *members["test"], members["meta"]]


def _cifar_dir_reader(dataset: str, folder: str) -> Reader:
    def read(data_dir: Path, split: str) -> dict[str, Split]:
        root = data_dir / folder
        missing = [n for n in _cifar_member_names(dataset) if not (root / n).is_file()]
        if missing:
            raise DatasetNotFoundError(f"{root} lacks {', '.join(missing)}")
        return _decode_cifar(dataset, {n: (root / n).read_bytes()
                                       for n in _cifar_member_names(dataset)})
    return read


def _cifar_tar_reader(dataset: str, archive: str) -> Reader:
    def read(data_dir: Path, split: str) -> dict[str, Split]:
        wanted = set(_cifar_member_names(dataset))
        blobs = {}
        # One streaming pass through the gzip: both splits come out of it, and both are cached.
        with tarfile.open(data_dir / archive, mode="r|gz") as tar:
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted:
                    blobs[name] = tar.extractfile(member).read()
        missing = wanted - set(blobs)
        if missing:
            raise ValueError(f"{archive} lacks {', '.join(sorted(missing))}")
        return _decode_cifar(dataset, blobs)
    return read


def _read_cifar10_jpeg(data_dir: Path, split: str) -> dict[str, Split]:
    """The offline JPEG copy: concatenated JPEG files with offsets, decoded with Pillow."""
    from PIL import Image

    with np.load(data_dir / "cifar10_jpeg.npz") as archive:
        raw = archive[f"{split}_jpeg"].tobytes()
        offsets = archive[f"{split}_offsets"].tolist()
        labels = archive[f"{split}_labels"].astype(np.int64)
        classes = [str(c) for c in archive["classes"]]
    x = np.empty((len(labels), 32, 32, 3), dtype=np.uint8)

    def decode(start: int, stop: int) -> None:  # one decoder call per JPEG file: no batch API
        for i in range(start, stop):
            with Image.open(io.BytesIO(raw[offsets[i]:offsets[i + 1]]), formats=["JPEG"]) as im:
                x[i] = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))

    # Pillow releases the GIL while decoding, so threads help on many-core (GPU) machines.
    workers = min(8, os.cpu_count() or 1)
    bounds = np.linspace(0, len(labels), 4 * workers + 1).astype(int).tolist()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode, bounds[:-1], bounds[1:]))
    return {split: Split(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), {"label": labels},
                         {"label": classes})}


# ----------------------------------------------------------------------------- SVHN

SVHN_MAT = {"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)}


def _read_svhn(data_dir: Path, split: str) -> dict[str, Split]:
    """SVHN cropped digits: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1) with 10 standing for 0."""
    from scipy.io import loadmat

    mat = loadmat(data_dir / SVHN_MAT[split][0])
    x = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1))
    y = mat["y"].astype(np.int64).ravel() % 10
    return {split: Split(x, {"label": y}, {"label": _DIGIT_NAMES})}


# ----------------------------------------------------------------------------- registry

_BOTH = ("train", "test")

SOURCES: dict[str, list[Source]] = {
    "mnist": [
        Source("mnist", "idx", MNIST_IDX, "official MNIST idx files (*-ubyte.gz)", True,
               _read_mnist_idx),
        Source("mnist", "npz", {s: ("mnist.npz",) for s in _BOTH},
               "mnist.npz (lossless offline copy of MNIST, Keras layout)", False,
               _read_mnist_npz),
    ],
    "cifar10": [
        Source("cifar10", "dir", {s: ("cifar-10-batches-py",) for s in _BOTH},
               "cifar-10-batches-py/ (official CIFAR-10 python pickles)", True,
               _cifar_dir_reader("cifar10", "cifar-10-batches-py")),
        Source("cifar10", "tar", {s: ("cifar-10-python.tar.gz",) for s in _BOTH},
               "cifar-10-python.tar.gz (official CIFAR-10 python archive)", True,
               _cifar_tar_reader("cifar10", "cifar-10-python.tar.gz")),
        Source("cifar10", "jpeg", {s: ("cifar10_jpeg.npz",) for s in _BOTH},
               "cifar10_jpeg.npz (JPEG q75 copy of CIFAR-10: lossy, pixel std ~0.5% below the "
               "official set, accuracies within about a point of the official binaries)", False,
               _read_cifar10_jpeg),
    ],
    "cifar100": [
        Source("cifar100", "dir", {s: ("cifar-100-python",) for s in _BOTH},
               "cifar-100-python/ (official CIFAR-100 python pickles)", True,
               _cifar_dir_reader("cifar100", "cifar-100-python")),
        Source("cifar100", "tar", {s: ("cifar-100-python.tar.gz",) for s in _BOTH},
               "cifar-100-python.tar.gz (official CIFAR-100 python archive)", True,
               _cifar_tar_reader("cifar100", "cifar-100-python.tar.gz")),
    ],
    "svhn": [
        Source("svhn", "mat", SVHN_MAT, "official SVHN cropped digits (*_32x32.mat)", True,
               _read_svhn),
    ],
}


def find_source(name: str, split: str, data_dir: Path) -> Source | None:
    """The source the loader will use for this split: the first one whose files exist."""
    return next((s for s in SOURCES[name] if s.available(data_dir, split)), None)


#: what reading a truncated or corrupt file raises (zip, gzip, tar, pickle, idx, .mat)
DECODE_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, struct.error, zlib.error,
                 zipfile.BadZipFile, tarfile.TarError, pickle.UnpicklingError)


def integrity_problem(path: Path) -> str | None:
    """Why a dataset file cannot be read in full (None if it can): every zip member's CRC for
    ``.npz``, the whole stream for ``.gz`` and ``.tar.gz``, the header and every variable for
    ``.mat``. A folder is checked file by file only for being readable."""
    try:
        if path.is_dir():
            for item in _files_of(path):
                with open(item, "rb") as handle:
                    while handle.read(1 << 20):
                        pass
        elif path.name.endswith(".npz"):
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC check"
        elif path.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(path, mode="r|gz") as tar:
                for member in tar:
                    if member.isfile():
                        tar.extractfile(member).read()
        elif path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                while handle.read(1 << 20):
                    pass
        elif path.suffix == ".mat":
            from scipy.io import loadmat

            loadmat(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return f"{type(exc).__name__}: {exc}"
    return None


def corrupt(name: str, source: Source, split: str, data_dir: Path, error: Exception) -> CorruptDatasetError:
    """The error for a present file that does not decode: names the file(s), says corrupt, and
    names the fetch command."""
    entries = [data_dir / f for f in source.files[split]]
    bad = [p for p in entries if integrity_problem(p) is not None] or entries
    files = ", ".join(str(p) for p in bad)
    official = ("" if source.official else
                " (the official files take precedence over this offline copy)")
    return CorruptDatasetError(
        f"{name} ({split}): {files} is corrupt or truncated ({type(error).__name__}: {error}). "
        f"Delete it and run `companion data fetch {name}` to download the official files, SHA-256 "
        f"checked{official}, or replace it with a good copy; `companion data check --verify` "
        f"checks every file.")


def not_found(name: str, split: str, data_dir: Path) -> DatasetNotFoundError:
    looked_for = ", ".join(dict.fromkeys(f for s in SOURCES[name] for f in s.files.get(split, ())))
    env = os.environ.get("COMPANION_DATA")
    where = f"COMPANION_DATA={env}" if env else "COMPANION_DATA is not set"
    return DatasetNotFoundError(
        f"{name} ({split}) is not in the data directory {data_dir} ({where}); looked for: "
        f"{looked_for}. Download the official files with `companion data fetch {name}` "
        f"(needs a network), or set COMPANION_DATA to a folder that holds them.")


# ----------------------------------------------------------------------------- cache

def writable(folder: Path) -> bool:
    """Whether files may be written under ``folder`` (or its nearest existing ancestor).

    A folder without any write permission bit counts as read-only even for root (who could
    write anyway), so that a shared, read-only data folder is never written into.
    """
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    return os.access(existing, os.W_OK) and bool(existing.stat().st_mode & 0o222)


def cache_roots(data_dir: Path) -> list[Path]:
    """Where caches may live, in order of preference (the first writable one is used)."""
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "companion"
    return [data_dir / "cache", user,
            Path(tempfile.gettempdir()) / f"companion-cache-{os.getuid()}"]


def _files_of(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]


def cache_key(source: Source, split: str, data_dir: Path) -> str:
    """``<dataset>-<source>-<split>-<hash of the source files' paths, sizes, mtimes>``."""
    digest = hashlib.sha1()
    for entry in source.files[split]:
        for path in _files_of(data_dir / entry):
            stat = path.stat()
            digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return f"{source.dataset}-{source.key}-{split}-{digest.hexdigest()[:12]}"


def read_cache(key: str, data_dir: Path) -> Split | None:
    for root in cache_roots(data_dir):
        folder = root / key
        try:
            meta = json.loads((folder / "meta.json").read_text())
            x = np.load(folder / "x.npy")
            labels = {kind: np.load(folder / f"y_{kind}.npy") for kind in meta["classes"]}
        except (OSError, EOFError, ValueError, KeyError):
            continue
        return Split(x, labels, meta["classes"])
    return None


def _save_atomic(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            write(handle)
        os.chmod(handle.name, 0o644)  # temporary files are created owner-only
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def write_cache(key: str, split: Split, data_dir: Path) -> Path | None:
    """Store a decoded split in the first writable cache root; None if none accepts it."""
    for root in cache_roots(data_dir):
        folder = root / key
        if not writable(folder):
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _save_atomic(folder / "x.npy", lambda f: np.save(f, split.x))
            for kind, labels in split.labels.items():
                _save_atomic(folder / f"y_{kind}.npy", lambda f, a=labels: np.save(f, a))
            # meta.json last: its presence marks a complete entry.
            text = json.dumps({"classes": split.classes}).encode()
            _save_atomic(folder / "meta.json", lambda f: f.write(text))
        except OSError:
            continue
        return folder
    return None


def load_split(name: str, split: str, data_dir: Path, use_cache: bool = True
               ) -> tuple[Split, Source]:
    """Decode (or read from the cache) one split of an image dataset."""
    source = find_source(name, split, data_dir)
    if source is None:
        raise not_found(name, split, data_dir)
    key = cache_key(source, split, data_dir)
    cached = read_cache(key, data_dir) if use_cache else None
    if cached is not None:
        return cached, source
    try:
        decoded = source.read(data_dir, split)
    except DatasetNotFoundError:
        raise
    except DECODE_ERRORS as exc:  # a present file that does not decode
        raise corrupt(name, source, split, data_dir, exc) from exc
    if use_cache:
        for other, arrays in decoded.items():
            if source.available(data_dir, other):
                write_cache(cache_key(source, other, data_dir), arrays, data_dir)
    return decoded[split], source
