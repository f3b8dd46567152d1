"""The claims ledger of one notebook run.

A notebook opens one ``Ledger`` (through ``companion.start``), records each claim with
:meth:`Ledger.check` (the measured values and the :class:`~companion.verdicts.Verdict` its
rule returned), shows :meth:`Ledger.measurements` for the reader and prints
:meth:`Ledger.summary` (verdicts only: what must read the same on every machine) in its
last, nbval-checked cell, and calls :meth:`Ledger.save`, which writes
``<results>/ledger/<profile>/<paper>__<topic>.json`` with the exact values.

A ledger says what produced it: the commit (and whether the tree was dirty), a digest of the
notebook's sources, a digest of each claim's registered statement, and the machine (CPU
model, the instruction set torch uses, BLAS). ``companion report`` marks a claim *stale* when
its statement or its notebook changed after the ledger was written, and a failed run writes
a ledger in state ``failed`` (:func:`write_failed`) so an older verdict is never shown beside
a failed notebook.

A run with a knob set by parameter (or a seed other than 0) is a *custom* run: its ledger and
figures go under ``<results>/custom/`` instead, so re-running a notebook with your own
parameters never replaces the committed record of its profile nor enters the report. So does
a *scratch* run: one not started as the profile's record (``$COMPANION_RECORD`` is not ``1``;
``companion reproduce``, ``make store`` and a plain gpu/paper ``companion run`` set it, see
``companion.pipeline.notebooks``): JupyterLab, plain papermill and ``--out`` runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..verdicts import Verdict
from . import claims as claim_registry
from .paths import repo_root, results_dir

FAILED = "failed"
#: "1" when a run writes its profile's record (set by ``companion.pipeline.notebooks.run``)
RECORD_ENV = "COMPANION_RECORD"


def recording() -> bool:
    """Whether this process runs as its profile's record (``$COMPANION_RECORD == "1"``)."""
    return os.environ.get(RECORD_ENV) == "1"

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


# -- provenance ------------------------------------------------------------------------------


def text_digest(text: str) -> str:
    """Short SHA-256 of a text (statements, notebook sources)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def notebook_digest(path: str | Path) -> str:
    """SHA-256 of a notebook's code (the code cells' sources, without the injected parameters cell
    and without outputs): what produced the ledger. Re-executing a notebook does not change it,
    nor does prose or a header re-rendered from the registry; editing the code does."""
    nb = json.loads(Path(path).read_text())
    sources = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code" or "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        source = cell.get("source", "")
        sources.append(source if isinstance(source, str) else "".join(source))
    return text_digest("\n\x1e".join(sources))


def git_state(root: Path | None = None) -> dict[str, Any]:
    """The commit of the checkout and whether its tracked files differ from it (None outside git)."""
    root = root or repo_root()
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit or None, "dirty": bool(dirty) if commit else None}


def _notebook_file(notebook: str) -> Path | None:
    # The running notebook's own file (a copy may live outside notebooks/), but only when it is
    # this notebook: a variable left over from another run must not lend its digest.
    env = os.environ.get("COMPANION_NOTEBOOK")
    if env and Path(env).is_file() and f"{Path(env).parent.name}/{Path(env).stem}" == notebook:
        return Path(env)
    stored = repo_root() / "notebooks" / f"{notebook}.ipynb"
    return stored if stored.is_file() else None


def provenance(notebook: str, claim_ids: list[str]) -> dict[str, Any]:
    """What produced a ledger: commit, dirty flag, notebook digest, statement digests."""
    path = _notebook_file(notebook)
    statements = {}
    for cid in claim_ids:
        try:
            statements[cid] = text_digest(claim_registry.get(cid).statement)
        except KeyError:
            statements[cid] = None
    return {**git_state(), "notebook_digest": notebook_digest(path) if path else None,
            "statement_digests": statements}


class Ledger:
    """Claims checked by one run of one notebook at one profile."""

    def __init__(self, notebook: str, cfg: Mapping[str, Any], *, seed: int | None = None,
                 scratch: bool = False):
        if notebook.count("/") != 1:
            raise ValueError(f"notebook must be '<paper>/<NN_topic>', got {notebook!r}")
        self.notebook = notebook
        self.paper, self.topic = notebook.split("/")
        self.profile = str(getattr(cfg, "profile", "custom"))
        self.config = dict(cfg)
        self.seed = seed
        self.overridden = list(getattr(cfg, "overridden", ()))
        self.scratch = scratch  # not the profile's record: filed under custom/ (module doc)
        self.custom = bool(self.overridden) or bool(seed) or scratch
        self.started = datetime.now(timezone.utc)
        self._t0 = time.perf_counter()
        self.entries: list[dict[str, Any]] = []
        self.figures: list[str] = []
        global _current
        _current = self

    def check(
        self,
        claim_id: str,
        measured: Any = None,
        outcome: Verdict | None = None,
        *,
        statement: str | None = None,
        digits: int = 3,
    ) -> Verdict:
        """Record claim ``claim_id``: what was measured and the verdict its rule returned.

        ``outcome`` is the :class:`~companion.verdicts.Verdict` of the claim's rule in
        ``companion.verdicts.<paper>``; ``passed`` is derived from it. A re-run of the same id
        replaces the earlier entry. ``statement`` defaults to the registry's statement.
        """
        claim = claim_registry.get(claim_id)
        if not isinstance(outcome, Verdict):
            raise TypeError(f"{claim_id}: pass the Verdict of the claim's rule (companion.verdicts), "
                            f"got {type(outcome).__name__}")
        self.entries = [e for e in self.entries if e["id"] != claim_id]  # re-run of a cell
        self.entries.append(
            {
                "id": claim_id,
                "statement": statement or claim.statement,
                "measured": _jsonable(measured),
                "measured_text": format_value(measured, digits),
                "expected": outcome.expected,
                "passed": outcome.passed,
                "verdict": outcome.verdict,
                "note": outcome.note,
            }
        )
        return outcome

    def summary(self) -> str:
        """The verdict of every claim and what was expected: the table an ``NBVAL_CHECK_OUTPUT``
        cell compares, so it holds no measured number (those differ in the last bits from one
        CPU to another; :meth:`measurements` shows them and the ledger JSON keeps them)."""
        return _table([("claim", "verdict", "expected")]
                      + [(e["id"], e["verdict"], e["expected"]) for e in self.entries])

    def measurements(self) -> str:
        """What each claim measured, rounded, and the rule's note: for the reader, not checked."""
        lines = []
        for e in self.entries:
            lines.append(f"{e['id']} ({e['verdict']}): {e['measured_text']}")
            if e["note"]:
                lines.append(f"    {e['note']}")
        return "\n".join(lines)

    @property
    def root(self) -> Path:
        """``<results>``, or ``<results>/custom`` for a run with parameters of its own."""
        return results_dir() / "custom" if self.custom else results_dir()

    @property
    def path(self) -> Path:
        return ledger_path(self.root, self.profile, self.notebook)

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
            "state": "finished",
            "seed": self.seed,
            "overridden": self.overridden,
            "scratch": self.scratch,
            "parameters": _jsonable(self.config),
            "environment": environment(),
            "provenance": provenance(self.notebook, [e["id"] for e in self.entries]),
            "started": self.started.isoformat(timespec="seconds"),
            "wall_seconds": round(time.perf_counter() - self._t0, 2),
            "claims": self.entries,
            "figures": self.figures,
        }

    def save(self) -> Path:
        """Write the JSON record; returns its path (not printed: it differs per machine)."""
        return _write_json(self.path, self.record())


def _table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _write_json(path: Path, record: dict[str, Any]) -> Path:
    """Write atomically: a reader never sees half a ledger."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(path)
    return path


def ledger_path(root: Path, profile: str, notebook: str) -> Path:
    paper, topic = notebook.split("/")
    return root / "ledger" / profile / f"{paper}__{topic}.json"


def write_failed(notebook: str, profile: str, error: str, *, cell: int | None = None,
                 custom: bool = False, parameters: Mapping[str, Any] | None = None,
                 seconds: float | None = None) -> Path:
    """A ledger in state ``failed`` for a run that did not finish: the report shows the
    notebook's claims as failed (never an older verdict). ``seconds``: how long the run went
    before it failed (``wall_seconds``, a lower bound of a full run)."""
    from ..repro import environment

    root = results_dir() / "custom" if custom else results_dir()
    record = {
        "notebook": notebook, "paper": notebook.split("/")[0], "profile": profile,
        "state": FAILED, "error": error, "cell": cell,
        "parameters": _jsonable(dict(parameters or {})),
        "environment": environment(),
        "provenance": provenance(notebook, []),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_seconds": round(seconds, 2) if seconds is not None else None,
        "claims": [], "figures": [],
    }
    return _write_json(ledger_path(root, profile, notebook), record)


def stale_reasons(record: Mapping[str, Any], notebooks_root: Path | None = None) -> list[str]:
    """Why a ledger no longer describes what the repository holds (empty when it still does):
    its notebook's sources changed since it was written (``notebook_digest``), or the registered
    statement of one of its claims did (``statement_digests``), or it predates provenance."""
    if record.get("state") == FAILED:
        return []
    provenance = record.get("provenance") or {}
    if not provenance.get("notebook_digest") and not provenance.get("statement_digests"):
        return ["no provenance (written before ledgers recorded digests): re-run it"]
    reasons = []
    path = (notebooks_root or repo_root() / "notebooks") / f"{record['notebook']}.ipynb"
    if not path.is_file():
        reasons.append("notebook removed")
    elif provenance.get("notebook_digest") != notebook_digest(path):
        reasons.append("notebook changed since the run")
    digests = provenance.get("statement_digests") or {}
    for cid in dict.fromkeys([*(e["id"] for e in record.get("claims", [])), *digests]):
        try:
            current = text_digest(claim_registry.get(cid).statement)
        except KeyError:
            reasons.append(f"{cid} is no longer registered")
            continue
        if digests.get(cid) != current:
            reasons.append(f"statement of {cid} changed since the run")
    return reasons
