"""Download the official dataset files, checked against their published SHA-256 sums, with pooch.

The sums are the ones TensorFlow Datasets records for the same URLs
(``tensorflow/datasets``: ``url_checksums/mnist.txt``, ``cifar10.csv``, ``cifar100.csv``,
``svhn_cropped.txt``); the CIFAR sums are also the ``file_hash`` values of Keras'
``cifar10.load_data``/``cifar100.load_data``. None was typed from memory.

`pooch <https://www.fatiando.org/pooch>`_ (the download manager SciPy and scikit-image use
for their data) does the work: it skips a file already present with the right SHA-256,
streams a download into a temporary file beside its target, checks the SHA-256 and renames
the file into place only then (so an interrupted or corrupt download never leaves a file
under the official name, and a corrupt file already there is replaced only by a verified
one), and retries a failed download. Two needs pooch does not serve, kept here: **several
mirrors per file** (a ``Pooch`` has one base URL; we try one ``Pooch`` per mirror, in
order) and **``file://`` URLs** (local mirrors and the tests; pooch knows http(s), ftp, sftp
and doi, so :func:`_copy_file_url` is passed as its downloader for them). We also refuse a
read-only data directory up front with the fix in the message.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.parse
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


#: extra attempts per URL after a failed download (pooch waits 1 s, then 2 s, ... between them)
RETRIES = 2


def _copy_file_url(url: str, output_file: str, pooch: object = None, check_only: bool = False) -> bool | None:
    """A pooch downloader for ``file://`` URLs (pooch itself has none)."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if check_only:
        return source.is_file()
    with open(source, "rb") as src, open(output_file, "wb") as dst:
        shutil.copyfileobj(src, dst, CHUNK)
    return None


def _fetch_one(remote: RemoteFile, folder: Path, url: str, timeout: float, retries: int) -> Path:
    """One file from one URL, through pooch (skip if verified, else download, verify, rename)."""
    import pooch

    base, _, name = url.rpartition("/")
    manager = pooch.create(path=folder, base_url=base + "/", registry={name: f"sha256:{remote.sha256}"},
                           retry_if_failed=retries)
    downloader = (_copy_file_url if url.startswith("file:") else
                  pooch.HTTPDownloader(timeout=timeout, progressbar=False))
    return Path(manager.fetch(name, downloader=downloader))


def fetch(name: str, data_dir: Path | str | None = None, base_url: str | None = None, *,
          timeout: float = 60.0, retries: int = RETRIES,
          log: Callable[[str], None] | None = None) -> list[Path]:
    """Download dataset ``name``'s official files into ``data_dir`` (default: the data dir).

    Files already present with the right SHA-256 are kept. ``base_url`` replaces the official
    mirrors (the file name is appended). Each URL is tried ``1 + retries`` times, then the
    next mirror. Returns the paths of the verified files; raises ``DownloadError`` when no URL
    gives a file with the official checksum.
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
    pooch_log = logging.getLogger("pooch")
    level = pooch_log.level
    pooch_log.setLevel(logging.WARNING)  # we say what happens through ``log``
    fetched = []
    try:
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
                    path = _fetch_one(remote, folder, url, timeout, retries)
                except Exception as exc:  # noqa: BLE001 - HTTP, network, file and checksum errors
                    errors.append(f"  {url}: {type(exc).__name__}: {' '.join(str(exc).split())}")
                    continue
                say(f"{path}: SHA-256 ok")
                fetched.append(path)
                break
            else:
                raise DownloadError(f"could not fetch {remote.name} for {name} (official SHA-256 "
                                    f"{remote.sha256}):\n" + "\n".join(errors))
    finally:
        pooch_log.setLevel(level)
    return fetched
