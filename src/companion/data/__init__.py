"""Datasets for the notebooks: ``load(name, split, ...)`` returns a ``Dataset`` of torch tensors.

========================= ========================================================= ==========
name                      what                                                      x
========================= ========================================================= ==========
``gaussian``              Gaussian classes (options num_classes, dim, separation)   float64
``spiral``                the dynamical-loss paper's official 3-class spiral        float64
``linear_separable``      binary, margin-separable (options dim, margin, condition)  float64
``digits``                scikit-learn 8x8 digits in [0, 1], 70/30 split by seed     float32
``uci:breast_cancer``,    binary scikit-learn sets, raw features, y in {0, 1},       float64
``uci:wine_0v1``,         70/30 stratified split by seed
``uci:iris_1v2``,
``uci:digits_3v8``
``mnist``, ``cifar10``,   official files or offline copies in the data directory     uint8
``cifar100``, ``svhn``    (see ``companion.data.images``); cifar100 option               (N,C,H,W)
                          ``label="fine"|"coarse"``
========================= ========================================================= ==========

``n`` keeps the first ``n`` examples of a shuffle seeded by ``seed``; ``per_class`` keeps the
first ``per_class`` of every class in that shuffle (a balanced subset, in shuffled order). For
the i.i.d. generators (``gaussian``, ``linear_separable``) they set how many points are drawn.
Image sets: ``to_float(x, name)`` normalizes, ``augment(x)`` crops and flips on the device.
A missing image dataset raises ``DatasetNotFoundError``, a present file that does not decode
``CorruptDatasetError`` (naming the file and the fetch command); ``fetch(name)`` downloads it
(with pooch) and ``check()`` (``companion data check``) says what is present, with ``verify``
also whether each file is intact (SHA-256 where a sum is known, else a full read).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..pipeline import paths
from . import images, synthetic
from .download import OFFICIAL_FILES, DownloadError, fetch, sha256_file
from .images import CorruptDatasetError, DatasetNotFoundError
from .transforms import NORMALIZATION, augment, to_float

__all__ = ["CorruptDatasetError", "Dataset", "DatasetNotFoundError", "DownloadError",
           "IMAGE_DATASETS", "NAMES", "NORMALIZATION", "SPLITS", "augment", "check", "fetch", "known_sums", "load",
           "subset_indices", "to_float", "verify_file"]

IMAGE_DATASETS = ("mnist", "cifar10", "cifar100", "svhn")
UCI_DATASETS = tuple(f"uci:{subset}" for subset in synthetic.UCI_BINARY)
NAMES = ("gaussian", "spiral", "linear_separable", "digits", *UCI_DATASETS, *IMAGE_DATASETS)
SPLITS = ("train", "test")


@dataclass
class Dataset:
    """Examples ``x``, int64 labels ``y`` and where they came from; unpacks as ``x, y``."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int
    name: str
    source: str
    classes: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)   # generator extras, e.g. w_star

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.x, self.y))

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Dataset:
        return replace(self, x=self.x.to(device), y=self.y.to(device))


def subset_indices(y: np.ndarray, n: int | None = None, per_class: int | None = None,
                   seed: int = 0) -> np.ndarray | None:
    """Indices of the seeded subset ``load`` takes (None: keep everything, in order)."""
    if n is None and per_class is None:
        return None
    order = np.random.default_rng(seed).permutation(len(y))
    if n is not None:
        if n > len(y):
            raise ValueError(f"n={n} exceeds the {len(y)} examples available")
        return order[:n]
    shuffled = y[order]
    classes, counts = np.unique(shuffled, return_counts=True)
    if counts.min() < per_class:
        raise ValueError(f"per_class={per_class} exceeds the {counts.min()} examples of class "
                         f"{classes[counts.argmin()]}")
    # Rank of each example within its class, in shuffled order.
    by_class = np.argsort(shuffled, kind="stable")
    sorted_labels = shuffled[by_class]
    rank = np.empty(len(y), dtype=np.int64)
    rank[by_class] = np.arange(len(y)) - np.searchsorted(sorted_labels, sorted_labels)
    return order[rank < per_class]


def _call(builder: Callable[..., Any], dataset: str, options: dict[str, Any], /,
          **fixed: Any) -> Any:
    """Call a builder, turning an unknown option into a clear error."""
    allowed = [p for p in inspect.signature(builder).parameters if p not in fixed]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for {dataset}; valid: "
                         f"{', '.join(allowed) or 'none'}")
    return builder(**fixed, **options)


def _load_images(name: str, split: str, data_dir: Path, label: str | None = None,
                 cache: bool = True) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], str]:
    arrays, source = images.load_split(name, split, data_dir, use_cache=cache)
    kind = label or next(iter(arrays.labels))
    if kind not in arrays.labels:
        raise ValueError(f"label={label!r} is not available for {name}; valid: "
                         f"{', '.join(arrays.labels)}")
    return arrays.x, arrays.labels[kind], tuple(arrays.classes[kind]), source.description


def load(name: str, split: str = "train", n: int | None = None, per_class: int | None = None,
         seed: int = 0, device: torch.device | str | None = None, *,
         data_dir: Path | str | None = None, **options: Any) -> Dataset:
    """One split of a dataset as torch tensors (on ``device`` if given); see the module doc.

    ``seed`` fixes the subset, the train/test split of the scikit-learn sets and the draws
    of the generators. ``data_dir`` overrides ``$COMPANION_DATA`` for image datasets. Image
    options: ``label`` ("fine" or "coarse" for cifar100), ``cache`` (default True).
    """
    if name not in NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} for {name}; valid splits: {', '.join(SPLITS)}")
    if n is not None and per_class is not None:
        raise ValueError("give n or per_class, not both")
    for value, label in ((n, "n"), (per_class, "per_class")):
        if value is not None and value < 1:
            raise ValueError(f"{label} must be >= 1, got {value}")
    info: dict[str, Any] = {}
    if name in IMAGE_DATASETS:
        folder = Path(data_dir) if data_dir is not None else paths.data_dir()
        x, y, classes, source = _call(_load_images, name, options, name=name, split=split,
                                      data_dir=folder)
    elif name in ("gaussian", "linear_separable"):
        builder = getattr(synthetic, name)
        x, y, classes, source, info = _call(builder, name, options, split=split, seed=seed,
                                            n=n, per_class=per_class)
        n = per_class = None  # already drawn at that size
    elif name.startswith("uci:"):
        x, y, classes, source, info = _call(synthetic.uci, name, options, subset=name[4:],
                                            split=split, seed=seed)
    else:
        x, y, classes, source, info = _call(getattr(synthetic, name), name, options,
                                            split=split, seed=seed)
    keep = subset_indices(y, n, per_class, seed)
    if keep is not None:
        x, y = x[keep], y[keep]
        source += f"; subset {'n=' + str(n) if n else 'per_class=' + str(per_class)}, seed {seed}"
    # torch wants writable, contiguous memory (and warns on stderr otherwise).
    dataset = Dataset(torch.from_numpy(np.require(x, requirements=["C", "W"])),
                      torch.from_numpy(np.require(y, dtype=np.int64, requirements=["C", "W"])),
                      len(classes), name, source, classes, info)
    return dataset.to(device) if device is not None else dataset


# ----------------------------------------------------------------------------- check

def known_sums(folder: Path) -> dict[str, str]:
    """SHA-256 sums to verify files against: the official files' (``OFFICIAL_FILES``) and those
    listed in ``<data dir>/SHA256SUMS`` (``sha256sum`` format; e.g. the offline copies')."""
    sums = {remote.name: remote.sha256 for files in OFFICIAL_FILES.values() for remote in files}
    listing = folder / "SHA256SUMS"
    if listing.is_file():
        for line in listing.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and len(parts[0]) == 64:
                sums.setdefault(parts[1].lstrip("*"), parts[0].lower())
    return sums


def verify_file(path: Path, sha256: str | None = None) -> str | None:
    """Why ``path`` is not intact (None if it is): a SHA-256 that differs from ``sha256`` when one
    is known, else a file that cannot be read in full (:func:`images.integrity_problem`)."""
    if sha256 is not None and path.is_file():
        actual = sha256_file(path)
        return None if actual == sha256 else f"SHA-256 {actual[:12]}... differs from {sha256[:12]}..."
    return images.integrity_problem(path)


def check(data_dir: Path | str | None = None, verify: bool = False) -> str:
    """A report: per image dataset, which files are present and which source ``load`` uses.

    ``verify`` also checks each file present: its SHA-256 where a sum is known (official
    files, and files listed in ``<data dir>/SHA256SUMS``), else that it reads in full; a
    corrupt file is marked ``[!] ... CORRUPT`` with the command that fetches a good copy.
    """
    folder = Path(data_dir) if data_dir is not None else paths.data_dir()
    origin = ("from COMPANION_DATA" if os.environ.get("COMPANION_DATA") and data_dir is None
              else "default; set COMPANION_DATA to use another folder" if data_dir is None
              else "given")
    lines = [f"data directory: {folder} ({origin})"
             + ("" if folder.is_dir() else " - does not exist")]
    sums = known_sums(folder) if verify else {}
    corrupt: set[str] = set()
    for name in IMAGE_DATASETS:
        lines.append(f"{name}:")
        for source in images.SOURCES[name]:
            for entry in dict.fromkeys(f for files in source.files.values() for f in files):
                path = folder / entry
                note = "official" if source.official else "offline copy"
                mark = "x" if path.exists() else " "
                if verify and path.exists():
                    problem = verify_file(path, sums.get(entry))
                    how = "SHA-256" if entry in sums else "read in full"
                    if problem is None:
                        note += f", {how} ok"
                    else:
                        mark = "!"
                        corrupt.add(entry)
                        note += (f", CORRUPT ({problem}): delete it and run "
                                 f"`companion data fetch {name}`")
                lines.append(f"  [{mark}] {entry} ({note})")
        used = {split: images.find_source(name, split, folder) for split in SPLITS}
        for split, source in used.items():
            if source is None:
                target = f"MISSING: run `companion data fetch {name}` or set COMPANION_DATA"
            elif any(f in corrupt for f in source.files[split]):
                target = f"CORRUPT {source.description}: run `companion data fetch {name}`"
            else:
                target = source.description
            lines.append(f"  -> {split}: {target}")
    lines.append("digits, " + ", ".join(UCI_DATASETS) + ": bundled with scikit-learn")
    lines.append("gaussian, spiral, linear_separable: generated")
    cache = next((root for root in images.cache_roots(folder) if images.writable(root)), None)
    lines.append(f"decoded-array cache: {cache if cache else 'none writable (loads decode every time)'}")
    return "\n".join(lines)
