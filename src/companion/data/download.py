"""Download the official dataset files, checked against their published SHA-256 sums.

The sums are the ones TensorFlow Datasets records for the same URLs
(``tensorflow/datasets``: ``url_checksums/mnist.txt``, ``cifar10.csv``, ``cifar100.csv``,
``svhn_cropped.txt``); the CIFAR sums are also the ``file_hash`` values of Keras'
``cifar10.load_data``/``cifar100.load_data``. None was typed from memory.

A download goes to a temporary file beside its target, is hashed while it streams, and is
renamed into place only once its size and SHA-256 check out: an interrupted or corrupt
download never leaves a file under the official name. ``file://`` URLs work too (tests, or
a local mirror via ``base_url``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..pipeline import paths
from .images import writable

CHUNK = 1 << 20


class DownloadError(OSError):
    """No URL delivered a file with the expected SHA-256."""


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name in the data directory, SHA-256 and the URLs to try."""

    name: str
    sha256: str
    bases: tuple[str, ...]     # URL prefixes (mirrors), tried in order; URL = base + name

    def urls(self, base_url: str | None = None) -> list[str]:
        bases = (base_url,) if base_url else self.bases
        return [f"{base.rstrip('/')}/{self.name}" for base in bases]


_MNIST = ("https://ossci-datasets.s3.amazonaws.com/mnist/",   # torchvision's mirror
          "https://storage.googleapis.com/cvdf-datasets/mnist/",  # TensorFlow Datasets'
          "http://yann.lecun.com/exdb/mnist/")                 # the original page
_TORONTO = ("https://www.cs.toronto.edu/~kriz/",)
_SVHN = ("http://ufldl.stanford.edu/housenumbers/",)

OFFICIAL_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": (
        RemoteFile("train-images-idx3-ubyte.gz",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", _MNIST),
        RemoteFile("train-labels-idx1-ubyte.gz",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", _MNIST),
        RemoteFile("t10k-images-idx3-ubyte.gz",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", _MNIST),
        RemoteFile("t10k-labels-idx1-ubyte.gz",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", _MNIST),
    ),
    "cifar10": (
        RemoteFile("cifar-10-python.tar.gz",
                   "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", _TORONTO),
    ),
    "cifar100": (
        RemoteFile("cifar-100-python.tar.gz",
                   "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7", _TORONTO),
    ),
    "svhn": (
        RemoteFile("train_32x32.mat",
                   "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8", _SVHN),
        RemoteFile("test_32x32.mat",
                   "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b", _SVHN),
    ),
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, expected_sha256: str, timeout: float) -> None:
    """Stream ``url`` into a temporary file beside ``target``; rename it there if it checks out."""
    partial = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                          suffix=".part", delete=False)
    try:
        digest, received = hashlib.sha256(), 0
        with partial, urllib.request.urlopen(url, timeout=timeout) as response:
            announced = response.headers.get("Content-Length")
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                partial.write(block)
                received += len(block)
        if announced is not None and received != int(announced):
            raise DownloadError(f"{url}: got {received} of {announced} bytes")
        if digest.hexdigest() != expected_sha256:
            raise DownloadError(f"{url}: SHA-256 {digest.hexdigest()} differs from the official "
                                f"{expected_sha256}")
        os.chmod(partial.name, 0o644)  # temporary files are created owner-only
        Path(partial.name).replace(target)
    finally:
        Path(partial.name).unlink(missing_ok=True)


def fetch(name: str, data_dir: Path | str | None = None, base_url: str | None = None, *,
          timeout: float = 60.0, log: Callable[[str], None] | None = None) -> list[Path]:
    """Download dataset ``name``'s official files into ``data_dir`` (default: the data dir).

    Files already present with the right SHA-256 are kept. ``base_url`` replaces the official
    mirrors (the file name is appended). Returns the paths of the verified files; raises
    ``DownloadError`` when no URL gives a file with the official checksum.
    """
    if name not in OFFICIAL_FILES:
        raise ValueError(f"nothing to fetch for {name!r}: downloadable datasets are "
                         f"{', '.join(OFFICIAL_FILES)} (digits and uci:* ship with scikit-learn; "
                         f"spiral, gaussian and linear_separable are generated)")
    say = log or (lambda message: None)
    folder = Path(data_dir) if data_dir is not None else paths.data_dir()
    if not writable(folder):
        raise DownloadError(f"the data directory {folder} is read-only; set COMPANION_DATA to "
                            f"a writable folder (or pass data_dir)")
    folder.mkdir(parents=True, exist_ok=True)
    fetched = []
    for remote in OFFICIAL_FILES[name]:
        target = folder / remote.name
        if target.is_file() and sha256_file(target) == remote.sha256:
            say(f"{target}: present, SHA-256 ok")
            fetched.append(target)
            continue
        errors = []
        for url in remote.urls(base_url):
            say(f"downloading {url}")
            try:
                _download(url, target, remote.sha256, timeout)
            except (OSError, http.client.HTTPException) as exc:  # incl. URLError, DownloadError
                errors.append(f"  {url}: {exc}")
                continue
            say(f"{target}: SHA-256 ok")
            fetched.append(target)
            break
        else:
            raise DownloadError(f"could not fetch {remote.name} for {name}:\n" + "\n".join(errors))
    return fetched
