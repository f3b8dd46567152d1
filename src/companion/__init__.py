"""companion: the shared helper package of the loss-function paper companion.

Submodules are imported lazily, so ``import companion`` is cheap and
``companion.losses`` (which imports torch) is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "curvature", "data", "ensembles", "gan", "heads", "imbalance", "losses", "metrics", "models",
    "experiments", "ood", "pipeline", "plots", "quantize", "repro", "runs", "theory", "train", "ufm",
    "verdicts",
}
# The pipeline's modules live in ``companion.pipeline``; these names reach them from notebooks.
_PIPELINE = {"claims", "ledger", "notebooks", "paths", "profiles", "report"}


def __getattr__(name: str) -> Any:
    if name == "start":  # the one setup call of a notebook
        from .pipeline.start import start

        return start
    if name in _SUBMODULES or name in _PIPELINE:
        package = __name__ if name in _SUBMODULES else f"{__name__}.pipeline"
        module = importlib.import_module(f"{package}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'companion' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES | _PIPELINE | {"start"})
