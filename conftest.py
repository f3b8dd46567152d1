"""Test-session settings shared by the unit tests and nbval (at the root, so that
``pytest notebooks/<paper>/NN.ipynb`` alone picks them up too).

The environment is set at import, before nbval starts any kernel, so that notebook kernels
inherit it: one BLAS/torch thread (stored outputs were produced that way), and a throw-away
results folder so that re-executing stored notebooks never rewrites committed ledgers. Each
pytest process (the controller and every xdist worker) removes its folder when it ends.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest

from companion.pipeline.notebooks import CI_ENV
from companion.pipeline.start import NOTEBOOK_ENV

os.environ.update(CI_ENV)
_RESULTS = tempfile.mkdtemp(prefix="companion-results-")
os.environ["COMPANION_RESULTS"] = _RESULTS
# nbval re-computes every run: a cache of finished runs would check the cache, not the code
os.environ["COMPANION_RUNS"] = "off"


def _remove_results() -> None:
    shutil.rmtree(_RESULTS, ignore_errors=True)


atexit.register(_remove_results)  # also when a worker ends without unconfiguring


def pytest_unconfigure(config):
    """The session's throw-away results folder goes with it (each xdist worker has its own)."""
    _remove_results()


def pytest_ignore_collect(collection_path, config):
    """A failed run's partial output (``*.failed.ipynb``) is never a stored notebook to check."""
    if collection_path.name.endswith(".failed.ipynb"):
        return True
    return None


def pytest_collectstart(collector):
    """nbval: never compare stderr or HTML reprs; text/plain of checked cells is what counts."""
    if getattr(collector, "fspath", None) and str(collector.fspath).endswith(".ipynb"):
        collector.skip_compare += ("text/html", "application/javascript", "stderr")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """nbval: tell the notebook's kernel, started by the first cell's setup, which notebook it
    runs (``companion.start`` takes the notebook's id from its path)."""
    path = str(getattr(item, "fspath", ""))
    if path.endswith(".ipynb"):
        os.environ[NOTEBOOK_ENV] = path


def pytest_runtest_teardown(item):
    """A test that changes torch's global default dtype would silently break later tests; the
    notebook set for nbval's kernel must not outlive its notebook (tests that follow in this
    worker would take it for theirs)."""
    import sys

    if str(getattr(item, "fspath", "")).endswith(".ipynb"):
        os.environ.pop(NOTEBOOK_ENV, None)

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_default_dtype() != torch.float32:
        torch.set_default_dtype(torch.float32)
        raise AssertionError(f"{item.nodeid} left torch's default dtype changed")
