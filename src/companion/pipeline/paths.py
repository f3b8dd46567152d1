"""Where things live: the repository root, the data directory and the results directory.

Both directories can be moved with environment variables, which is how CI, the GPU
machine and the tests point the project elsewhere:

* ``COMPANION_DATA``: datasets (official archives, offline copies, decoded caches);
  default ``<repo>/data``.
* ``COMPANION_RESULTS``: ledgers, figures and executed notebooks; default ``<repo>/results``.
"""

from __future__ import annotations

import os
from pathlib import Path

_MARKER = "pyproject.toml"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder above ``start`` (default: this package) holding pyproject.toml.

    Falls back to the current directory for an installed, non-editable package.
    """
    for base in (start, Path(__file__).resolve().parent, Path.cwd()):
        if base is None:
            continue
        for folder in (base, *base.parents):
            if (folder / _MARKER).is_file() and (folder / "src" / "companion").is_dir():
                return folder
    return Path.cwd()


def data_dir() -> Path:
    """The dataset folder: ``$COMPANION_DATA`` or ``<repo>/data``."""
    env = os.environ.get("COMPANION_DATA")
    return Path(env).expanduser().resolve() if env else repo_root() / "data"


def results_dir() -> Path:
    """The results folder: ``$COMPANION_RESULTS`` or ``<repo>/results``."""
    env = os.environ.get("COMPANION_RESULTS")
    return Path(env).expanduser().resolve() if env else repo_root() / "results"


def notebooks_dir() -> Path:
    """The folder of stored (ci-scale) notebooks."""
    return repo_root() / "notebooks"
