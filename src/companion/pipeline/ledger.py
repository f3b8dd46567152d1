"""The claims ledger of one notebook run.

A notebook creates one ``Ledger``, records each claim with :meth:`Ledger.check` (the
measured value, the expected value or relation, and an honest verdict), prints
:meth:`Ledger.summary` in its last cell and calls :meth:`Ledger.save`, which writes
``<results>/ledger/<profile>/<paper>__<topic>.json``. ``companion report`` reads them all.

A run with a knob set by parameter (or a seed other than 0) is a *custom* run: its ledger and
figures go under ``<results>/custom/`` instead, so re-running a notebook with your own
parameters never replaces the committed record of its profile nor enters the report.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import claims as claim_registry
from .paths import results_dir

VERDICTS = ("reproduced", "partially", "not reproduced", "not checked at this scale")

_current: Ledger | None = None


def current() -> Ledger | None:
    """The ledger most recently created in this process (figures are filed under it)."""
    return _current


def _jsonable(value: Any) -> Any:
    """Plain-JSON form of numbers, arrays, tensors and containers."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays/scalars, torch tensors
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def format_value(value: Any, digits: int = 3) -> str:
    """Rounded text of a measured value: floats to ``digits`` significant digits."""
    value = _jsonable(value)
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v, digits) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v, digits)}" for k, v in value.items()) + "}"
    return str(value)


class Ledger:
    """Claims checked by one run of one notebook at one profile."""

    def __init__(self, notebook: str, cfg: Mapping[str, Any], *, seed: int | None = None):
        if notebook.count("/") != 1:
            raise ValueError(f"notebook must be '<paper>/<NN_topic>', got {notebook!r}")
        self.notebook = notebook
        self.paper, self.topic = notebook.split("/")
        self.profile = str(getattr(cfg, "profile", "custom"))
        self.config = dict(cfg)
        self.seed = seed
        self.overridden = list(getattr(cfg, "overridden", ()))
        self.custom = bool(self.overridden) or bool(seed)
        self.started = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self.entries: list[dict[str, Any]] = []
        self.figures: list[str] = []
        global _current
        _current = self

    def check(
        self,
        claim_id: str,
        *,
        measured: Any,
        expected: Any,
        passed: bool | None = None,
        verdict: str | None = None,
        note: str = "",
        statement: str | None = None,
        digits: int = 3,
    ) -> None:
        """Record one claim (a re-run of the same id replaces the earlier entry).

        ``verdict`` defaults to ``reproduced`` / ``not reproduced`` from ``passed``, and to
        ``not checked at this scale`` when ``passed`` is None; give it explicitly for
        ``partially``. ``statement`` defaults to the registry's statement of the claim.
        """
        claim = claim_registry.get(claim_id)
        if verdict is None:
            verdict = {True: VERDICTS[0], False: VERDICTS[2], None: VERDICTS[3]}[
                None if passed is None else bool(passed)
            ]
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        self.entries = [e for e in self.entries if e["id"] != claim_id]  # re-run of a cell
        self.entries.append(
            {
                "id": claim_id,
                "statement": statement or claim.statement,
                "measured": _jsonable(measured),
                "measured_text": format_value(measured, digits),
                "expected": format_value(expected, digits),
                "passed": None if passed is None else bool(passed),
                "verdict": verdict,
                "note": note,
            }
        )

    def summary(self) -> str:
        """A fixed-width table of the claims, meant for an ``NBVAL_CHECK_OUTPUT`` cell."""
        rows = [("claim", "verdict", "measured", "expected")]
        rows += [(e["id"], e["verdict"], e["measured_text"], e["expected"]) for e in self.entries]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    @property
    def root(self) -> Path:
        """``<results>``, or ``<results>/custom`` for a run with parameters of its own."""
        return results_dir() / "custom" if self.custom else results_dir()

    @property
    def path(self) -> Path:
        return self.root / "ledger" / self.profile / f"{self.paper}__{self.topic}.json"

    def figure_path(self, name: str, suffix: str = ".png") -> Path:
        """Where figure ``name`` of this run is saved (and recorded in the ledger)."""
        path = self.root / self.profile / self.paper / "figures" / self.topic / f"{name}{suffix}"
        rel = str(path.relative_to(self.root))
        if rel not in self.figures:
            self.figures.append(rel)
        return path

    def record(self) -> dict[str, Any]:
        from ..repro import environment

        return {
            "notebook": self.notebook,
            "paper": self.paper,
            "profile": self.profile,
            "seed": self.seed,
            "overridden": self.overridden,
            "parameters": _jsonable(self.config),
            "environment": environment(),
            "started": self.started.isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - self._t0, 2),
            "claims": self.entries,
            "figures": self.figures,
        }

    def save(self) -> Path:
        """Write the JSON record; returns its path (not printed: it differs per machine)."""
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.record(), indent=1) + "\n")
        return path
