"""The one setup call of a notebook: ``run = companion.start(PROFILES, globals())``.

It reads ``profile``, ``seed`` and every knob of the profile table from the notebook's
namespace (the ``parameters`` cell is the one place knobs are declared), resolves them
(:mod:`.profiles`, type-checked), seeds and pins threads (:func:`companion.repro.setup`),
sets the plotting theme, and opens the run's :class:`~.ledger.Ledger` under the notebook's
id, which it takes from the notebook's path:

1. ``$COMPANION_NOTEBOOK`` (set by ``companion run``, the test suite and the runs API),
2. ``PAPERMILL_INPUT_PATH`` (plain ``papermill --inject-paths``),
3. ``$JPY_SESSION_NAME`` / ``__session__`` (JupyterLab, Jupyter Server) or VS Code's
   ``__vsc_ipynb_file__``.

The id is ``<folder>/<stem>`` of that path (``rooted_loss/01_loss_family``), so a notebook
never spells its own name.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ledger import Ledger, recording
from .profiles import Config, check_table, resolve

NOTEBOOK_ENV = "COMPANION_NOTEBOOK"
RESERVED = ("profile", "seed")


@dataclass
class Run:
    """What a notebook needs after setup: its settings, ledger, device and seed."""

    notebook: str
    cfg: Config
    ledger: Ledger
    device: Any
    seed: int

    def __iter__(self):  # cfg, ledger, device = companion.start(...)
        return iter((self.cfg, self.ledger, self.device))


def notebook_path(namespace: Mapping[str, Any] | None = None) -> Path | None:
    """The path of the running notebook, from the places listed in the module docstring."""
    namespace = namespace or {}
    for candidate in (os.environ.get(NOTEBOOK_ENV), namespace.get("PAPERMILL_INPUT_PATH"),
                      os.environ.get("JPY_SESSION_NAME"), namespace.get("__session__"),
                      namespace.get("__vsc_ipynb_file__")):
        if candidate and str(candidate).endswith(".ipynb"):
            return Path(str(candidate))
    return None


def notebook_id_of(path: Path) -> str:
    """``<paper>/<NN_topic>`` from a notebook path."""
    return f"{path.parent.name}/{path.stem}"


def start(table: Mapping[str, Mapping[str, Any]], namespace: MutableMapping[str, Any], *,
          notebook: str | None = None, quiet: bool = False) -> Run:
    """Resolve the notebook's knobs from ``namespace``, set up the run and open its ledger.

    ``notebook`` overrides the id found from the path. Raises ``ValueError`` when the
    parameters cell and the profile table disagree (a knob in one but not the other), for a
    badly typed override, or when the notebook's path cannot be found.
    """
    from .. import plots, repro

    check_table(table)
    knobs = list(table["ci"])
    missing = [k for k in (*RESERVED, *knobs) if k not in namespace]
    if missing:
        raise ValueError(f"the parameters cell must declare {', '.join(missing)} "
                         f"(every knob of the profile table, set to None)")
    profile, seed = namespace["profile"], namespace["seed"]
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an int, got {seed!r}")
    if notebook is None:
        path = notebook_path(namespace)
        if path is None:
            raise ValueError(
                "cannot tell which notebook this is: run it with `companion run`, with "
                "`papermill --inject-paths`, in JupyterLab, or pass notebook='<paper>/<NN_topic>'")
        notebook = notebook_id_of(path)
    cfg = resolve(profile, table, {k: namespace[k] for k in knobs}, quiet=quiet, seed=seed)
    # a notebook may declare a `deterministic` knob (False: cuDNN autotuning and TF32, as the
    # papers' runs); every other notebook runs deterministic kernels
    device = repro.setup(seed, deterministic=bool(cfg.get("deterministic", True)))
    plots.theme()
    ledger = Ledger(notebook, cfg, seed=seed, scratch=not recording())
    return Run(notebook, cfg, ledger, device, seed)
