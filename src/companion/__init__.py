"""companion: the shared helper package of the loss-function paper companion.

Submodules are imported lazily, so ``import companion`` is cheap and
``companion.losses`` (which imports torch) is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "claims", "cli", "curvature", "data", "ensembles", "gan", "gpu_plan", "heads", "imbalance",
    "ledger", "losses", "metrics", "models", "notebooks", "ood", "paths", "plots", "profiles",
    "quantize", "repro", "report", "theory", "train", "ufm",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'companion' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SUBMODULES)
