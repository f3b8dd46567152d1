"""The claims registry: every checked claim, with a stable id, in one place.

The registry is a YAML file per paper in ``companion/registry/`` (plus ``papers.yaml``).
A notebook's ledger refers to claims by id; the report joins ledgers to this registry so
that the paper's statement and, where the reference digest gives one, the paper's number
appear next to our measurements.

Each claim entry::

    - id: R-D1                       # stable, unique across papers
      statement: "..."               # what is claimed, in the paper's terms
      source: paper                  # paper | code | derived | third-party | ours
      paper_value: null              # the paper's number, only where the digest gives it
      notebook: rooted_loss/01_loss_family
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml

REGISTRY = Path(__file__).resolve().parent.parent / "registry"
SOURCES = ("paper", "code", "derived", "third-party", "ours")


@dataclass(frozen=True)
class Paper:
    slug: str
    title: str
    authors: str
    venue: str
    arxiv: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    statement: str
    source: str
    notebook: str
    paper_value: str | None = None


@cache
def papers() -> dict[str, Paper]:
    """The papers by slug, in the order of ``papers.yaml``."""
    entries = yaml.safe_load((REGISTRY / "papers.yaml").read_text())
    return {e["slug"]: Paper(**e) for e in entries}


@cache
def all_claims() -> dict[str, Claim]:
    """Every registered claim by id; raises on a duplicate id or a malformed entry."""
    claims: dict[str, Claim] = {}
    for slug in papers():
        path = REGISTRY / f"{slug}.yaml"
        if not path.exists():
            continue
        for entry in yaml.safe_load(path.read_text()) or []:
            claim = Claim(paper=slug, **entry)
            if claim.id in claims:
                raise ValueError(f"duplicate claim id {claim.id!r} in {path.name}")
            if claim.source not in SOURCES:
                raise ValueError(f"claim {claim.id}: source must be one of {SOURCES}")
            claims[claim.id] = claim
    return claims


def get(claim_id: str) -> Claim:
    """The registered claim ``claim_id``; a typo gets the closest registered id."""
    claims = all_claims()
    if claim_id not in claims:
        hint = difflib.get_close_matches(claim_id, list(claims), n=3)
        raise KeyError(
            f"claim {claim_id!r} is not in the registry (src/companion/registry/*.yaml)."
            + (f" Close: {', '.join(hint)}" if hint else "")
        )
    return claims[claim_id]


@dataclass(frozen=True)
class NotebookInfo:
    """Facts about one notebook kept in ``registry/notebooks.yaml``."""

    id: str                        # '<paper>/<NN_topic>'
    cuda: tuple[str, ...]          # profiles that need a CUDA device
    gpu_minutes: float             # estimated H100 minutes of the gpu profile, start included
    basis: str                     # what the estimate rests on
    smoke: dict = field(default_factory=dict)  # per profile: overrides of the smoke test
    paper_cpu_minutes: float | None = None  # the paper profile on one CPU core, where it needs no CUDA
    paper_cpu_basis: str = ""               # measured, or extrapolated from which shortened runs

    def needs_cuda(self, profile: str) -> bool:
        return profile in self.cuda


@cache
def notebooks() -> dict[str, NotebookInfo]:
    """Every registered notebook by id, from ``registry/notebooks.yaml``."""
    entries = yaml.safe_load((REGISTRY / "notebooks.yaml").read_text()) or {}
    return {nb: NotebookInfo(nb, tuple(e.get("cuda") or ()), float(e["gpu_minutes"]), str(e["basis"]),
                             dict(e.get("smoke") or {}),
                             float(e["paper_cpu"]["minutes"]) if e.get("paper_cpu") else None,
                             str((e.get("paper_cpu") or {}).get("basis", "")))
            for nb, e in entries.items()}


def notebook(notebook_id: str) -> NotebookInfo:
    """The registry's facts about ``notebook_id``; a typo gets the closest registered id."""
    known = notebooks()
    if notebook_id not in known:
        hint = difflib.get_close_matches(notebook_id, list(known), n=2)
        raise KeyError(f"notebook {notebook_id!r} is not in registry/notebooks.yaml."
                       + (f" Close: {', '.join(hint)}" if hint else ""))
    return known[notebook_id]


def claims_of(notebook_id: str) -> list[Claim]:
    """The registered claims a notebook checks, in registry order."""
    return [c for c in all_claims().values() if c.notebook == notebook_id]
