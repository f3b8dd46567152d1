"""Figures: one seaborn theme for every notebook, and figures filed under the current run.

``savefig(fig, "margins")`` writes ``<results>/<profile>/<paper>/figures/<topic>/margins.png``
for the notebook whose :class:`~companion.ledger.Ledger` is current, and records the file
in that ledger.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

from .pipeline import ledger as ledger_module
from .pipeline.paths import results_dir

#: One colour per loss, shared by every figure so a loss keeps its colour across papers.
LOSS_COLORS = {
    "ce": "#1f77b4",
    "ls": "#ff7f0e",
    "focal": "#2ca02c",
    "mse": "#d62728",
    "unhinged": "#9467bd",
    "rooted": "#8c564b",
    "rooted_gce": "#e377c2",
    "dynamical": "#17becf",
    "logistic": "#7f7f7f",
}


def theme() -> None:
    """The companion's plotting style (seaborn ticks, readable sizes, no figure-size noise)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="ticks", palette="deep")
    matplotlib.rcParams.update(
        {"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight", "axes.grid": True,
         "grid.alpha": 0.3}
    )


def savefig(fig: matplotlib.figure.Figure, name: str) -> Path:
    """Save ``fig`` as PNG under the current run's figures folder and return the path."""
    run = ledger_module.current()
    path = run.figure_path(name) if run else results_dir() / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
