"""The claims report: every ledger JSON joined to the claims registry, as Markdown.

``companion report`` writes ``results/REPORT.md``:

* a header with the legend, the totals line (the README quotes it), the totals by claim source
  (the papers' own claims first, then the official code's, our derivations, third-party
  results and our own comparisons) and by paper;
* the runs that failed (ledgers in state ``failed``: notebook, profile, failing cell, error)
  and the stale ledgers (the notebook's sources or a claim's registered statement changed
  after the ledger was written, see :func:`companion.pipeline.ledger.stale_reasons`);
* per paper, one row per claim, the paper's claims first: id, source, statement, the paper's
  number (only where the paper gives one), a cell per profile run (ci, gpu, and paper once a
  paper-profile ledger exists) and the overall verdict. A profile cell holds the verdict, a
  one-line measured summary (the rule's note, whose first sentence carries the decisive
  numbers, else the rounded measurements), links to the executed notebook and to the ledger
  JSON that holds the full record, and for gpu and paper runs the device it was measured on.

Only ledgers of notebooks that exist are read (a deleted notebook's ledger is ignored).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ..verdicts import NOT_CHECKED, VERDICTS, combine
from . import claims as registry
from .ledger import FAILED, stale_reasons
from .paths import notebooks_dir, repo_root, results_dir

PROFILE_COLUMNS = ("ci", "gpu")
#: every profile, smallest scale first; the overall verdict is the largest one's
PROFILES = ("ci", "gpu", "paper")
NOT_RUN = "not run"
#: columns of the totals tables
COUNTED = (*VERDICTS, FAILED, NOT_RUN)
#: characters of a one-line measured summary before it is cut
SUMMARY_CHARS = 150
SOURCE_NAMES = {"paper": "the papers' claims", "code": "the official code", "derived": "our derivations",
                "third-party": "third-party results", "ours": "our own comparisons"}


def load_ledgers(root: Path | None = None, notebooks_root: Path | None = None) -> list[dict[str, Any]]:
    """All ledger records under ``<results>/ledger/<profile>/`` whose notebook exists under
    ``notebooks_root`` (default ``notebooks/``): a deleted notebook's ledger is not read."""
    folder = (root or results_dir()) / "ledger"
    nbs = notebooks_root or notebooks_dir()
    records = [json.loads(p.read_text()) for p in sorted(folder.glob("*/*.json"))]
    return [r for r in records if (nbs / f"{r['notebook']}.ipynb").is_file()]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def notebook_link(record: dict[str, Any]) -> str:
    """Relative link (from results/REPORT.md) to the executed notebook of a ledger."""
    paper, topic = record["notebook"].split("/")
    if record["profile"] == "ci":
        return f"../notebooks/{paper}/{topic}.ipynb"
    return f"{record['profile']}/{paper}/{topic}.ipynb"


def ledger_link(record: dict[str, Any]) -> str:
    paper, topic = record["notebook"].split("/")
    return f"ledger/{record['profile']}/{paper}__{topic}.json"


def _links(record: dict[str, Any]) -> str:
    return f"[notebook]({notebook_link(record)}) · [ledger]({ledger_link(record)})"


def measured_on(record: dict[str, Any]) -> str:
    """Where a run was measured: 'CUDA: <GPU>' or 'CPU: <model>'."""
    env = record.get("environment") or {}
    if env.get("device") == "cuda":
        return f"CUDA: {env.get('device_name') or 'GPU'}"
    return f"CPU: {env.get('cpu_model') or env.get('device_name') or 'unknown'}"


def combine_verdicts(verdicts: list[str]) -> str:
    """One verdict for a claim checked by several notebooks at one profile: the parts'
    verdicts joined by :func:`companion.verdicts.combine`."""
    return combine(verdicts)


def overall_verdict(by_profile: dict[str, list[dict[str, Any]]]) -> str:
    """The verdict measured at the largest scale: paper over gpu over ci. A failed run at that
    scale makes it 'failed (<profile>)'; a stale ledger adds ', stale'."""
    for profile in reversed(PROFILES):
        items = by_profile.get(profile, [])
        if not items:
            continue
        stale = ", stale" if any(e.get("stale") for e in items) else ""
        if any(e["verdict"] == FAILED for e in items):
            return f"{FAILED} ({profile}{stale})"
        verdict = combine_verdicts([e["verdict"] for e in items])
        if verdict != NOT_CHECKED:
            return f"{verdict} ({profile}{stale})"
    return NOT_CHECKED


def _first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text.strip(), maxsplit=1)[0]


def shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    cut = cut[: cut.rfind(" ")] if " " in cut else cut
    return cut.rstrip(",;:") + "…"


def one_line(entry: dict[str, Any], limit: int = SUMMARY_CHARS) -> str:
    """A claim's measured summary in one short line: the first sentence of its rule's note (the
    decisive numbers), else its rounded measurements."""
    if entry["verdict"] == FAILED:
        return shorten(f"{entry.get('error') or 'the run failed'}", limit)
    note = (entry.get("note") or "").strip()
    text = _first_sentence(note) if note else str(entry.get("measured_text", "")).strip("{}")
    return shorten(text, limit)


def _profile_cell(items: list[dict[str, Any]]) -> str:
    if not items:
        return NOT_RUN
    parts = []
    for e in items:
        prefix = f"{e['topic']}: " if len(items) > 1 else ""
        text = f"{prefix}**{e['verdict']}**: {_cell(one_line(e))}"
        if e["profile"] != "ci":
            text += f" ({_cell(e['measured_on'])})"
        if e.get("stale"):
            text += " ⚠ stale"
        parts.append(f"{text} {e['links']}")
    return "<br>".join(parts)


def _entries(ledgers: list[dict[str, Any]], notebooks_root: Path | None
             ) -> tuple[dict[str, dict[str, list[dict[str, Any]]]], list[dict], list[tuple[dict, list[str]]]]:
    """Per claim and profile the ledger entries (failed runs as entries with verdict 'failed'),
    the failed records and the stale records with their reasons."""
    entries: dict[str, dict[str, list[dict[str, Any]]]] = {}
    failed, stale = [], []
    for record in ledgers:
        topic = record["notebook"].split("/")[1]
        common = {"topic": topic, "profile": record["profile"], "links": _links(record),
                  "measured_on": measured_on(record)}
        if record.get("state") == FAILED:
            failed.append(record)
            claims = [{"id": c.id, "verdict": FAILED, "error": record.get("error")}
                      for c in registry.claims_of(record["notebook"])]
        else:
            reasons = stale_reasons(record, notebooks_root)
            if reasons:
                stale.append((record, reasons))
            claims = [{**c, "stale": bool(reasons)} for c in record["claims"]]
        for claim in claims:
            entries.setdefault(claim["id"], {}).setdefault(record["profile"], []).append({**claim, **common})
    return entries, failed, stale


def build(ledgers: list[dict[str, Any]] | None = None, notebooks_root: Path | None = None) -> str:
    """The Markdown report."""
    ledgers = load_ledgers(notebooks_root=notebooks_root) if ledgers is None else ledgers
    entries, failed, stale = _entries(ledgers, notebooks_root)
    columns = [p for p in PROFILES if p in PROFILE_COLUMNS or any(r["profile"] == p for r in ledgers)]
    claims = registry.all_claims()
    order = {source: i for i, source in enumerate(registry.SOURCES)}
    per_paper: dict[str, Counter[str]] = {}
    per_source: dict[str, Counter[str]] = {source: Counter() for source in registry.SOURCES}
    out: list[str] = []
    for slug, paper in registry.papers().items():
        ids = sorted((c.id for c in claims.values() if c.paper == slug), key=lambda i: order[claims[i].source])
        if not ids:
            continue
        out += [f"## {paper.title}", ""]
        if paper.arxiv:
            out += [f"{paper.authors}, {paper.venue}, [arXiv {paper.arxiv}]({paper.url})", ""]
        out += ["| claim | source | statement | paper value | " + " | ".join(columns) + " | verdict |",
                "| --- " * (len(columns) + 5) + "|"]
        for cid in ids:
            claim = claims[cid]
            by_profile = entries.get(cid, {})
            cells = [_profile_cell(by_profile.get(profile, [])) for profile in columns]
            verdict = overall_verdict(by_profile) if by_profile else NOT_RUN
            word = verdict.split(" (")[0]
            per_paper.setdefault(slug, Counter())[word] += 1
            per_source[claim.source][word] += 1
            out.append("| " + " | ".join(
                [_cell(x) for x in (cid, claim.source, claim.statement, claim.paper_value or "")]
                + [c.replace("\n", " ") for c in cells] + [_cell(verdict)]) + " |")
        out.append("")
    totals = sum(per_paper.values(), Counter())
    header = [
        "# Reproduction report",
        "",
        "Generated by `companion report` from the ledgers in `results/ledger/`; do not edit by hand.",
        "Verdicts: **reproduced** (every part holds), **partially** (some part failed), **partially",
        "checked** (every part that ran holds; other parts were not run at this scale), **not",
        "reproduced**, **undecided** (measured within the noise margin), **not checked at this scale**",
        "(the run cannot test the claim), and **failed** (the run stopped with an error). The overall",
        "verdict is the one measured at the largest scale (paper over gpu over ci); a claim checked by",
        "several notebooks combines their verdicts. Each cell gives the decisive numbers in one line",
        "and links the executed notebook and its ledger (the full record); gpu and paper cells say",
        "where they were measured. **stale**: the notebook or the claim's statement changed after",
        "the ledger was written. 'Paper value' is filled only where the paper gives a number.",
        "",
        papers_line(per_source["paper"]),
        totals_line(totals),
        "",
        "By source of the claim:",
        "",
        *counts_table({SOURCE_NAMES[s]: c for s, c in per_source.items() if c}, "source"),
        "",
        "By paper:",
        "",
        *summary_table(per_paper),
        "",
        *_failed_section(failed),
        *_stale_section(stale),
    ]
    return "\n".join(header + out)


def _failed_section(failed: list[dict[str, Any]]) -> list[str]:
    if not failed:
        return []
    rows = ["## Failed runs", "",
            f"{len(failed)} run(s) stopped with an error; their claims show **failed** at that profile.", "",
            "| notebook | profile | error | record |", "| --- | --- | --- | --- |"]
    for record in failed:
        rows.append(f"| {record['notebook']} | {record['profile']} | {_cell(shorten(record.get('error') or '', 200))} "
                    f"| [ledger]({ledger_link(record)}) |")
    return rows + [""]


def _stale_section(stale: list[tuple[dict[str, Any], list[str]]]) -> list[str]:
    if not stale:
        return []
    rows = ["## Stale ledgers", "",
            f"{len(stale)} ledger(s) no longer describe the repository: re-run their notebooks "
            "(`make store NB=...` at ci, `companion run NB --profile gpu` at gpu).", "",
            "| notebook | profile | why |", "| --- | --- | --- |"]
    for record, reasons in stale:
        rows.append(f"| [{record['notebook']}]({ledger_link(record)}) | {record['profile']} | "
                    f"{_cell('; '.join(reasons))} |")
    return rows + [""]


def totals_line(totals: Counter[str]) -> str:
    """'**Totals over N claims:** a reproduced, b partially, ...' (the README quotes it)."""
    counts = ", ".join(f"{totals[v]} {v}" for v in COUNTED if totals[v])
    return f"**Totals over {sum(totals.values())} claims:** {counts}."


def papers_line(counts: Counter[str]) -> str:
    """'**The papers' own N claims:** a reproduced, ...': the headline, before claims of other
    sources are mixed in (the README quotes it too)."""
    listing = ", ".join(f"{counts[v]} {v}" for v in COUNTED if counts[v])
    return f"**The papers' own {sum(counts.values())} claims:** {listing}.  "


def counts_table(rows: dict[str, Counter[str]], label: str) -> list[str]:
    """One row per key with its claim count per verdict."""
    lines = [f"| {label} | claims | " + " | ".join(COUNTED) + " |", "| --- " * (len(COUNTED) + 2) + "|"]
    for key, counts in rows.items():
        lines.append(f"| {key} | {sum(counts.values())} | " + " | ".join(str(counts[v]) for v in COUNTED) + " |")
    return lines


def summary_table(per_paper: dict[str, Counter[str]]) -> list[str]:
    """One row per paper (slug) with its claim count per verdict."""
    return counts_table({f"`{slug}`": counts for slug, counts in per_paper.items()}, "paper")


def write(path: Path | None = None, notebooks_root: Path | None = None) -> Path:
    """Write the report to ``results/REPORT.md`` (or ``path``) and return the path."""
    path = path or results_dir() / "REPORT.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build(notebooks_root=notebooks_root))
    return path


def sync_readme(report_text: str, readme: Path | None = None) -> Path:
    """Copy the report's two headline lines and its two count tables (by source, by paper) into
    the README's "Results at a glance", which quotes them (a test keeps the two equal)."""
    import re

    readme = readme or repo_root() / "README.md"
    lines = report_text.splitlines()
    text = readme.read_text()
    for prefix in ("**The papers' own", "**Totals over"):
        line = next(x for x in lines if x.startswith(prefix))
        text = re.sub(rf"^{re.escape(prefix)}.*$", lambda _: line, text, count=1, flags=re.M)
    for head in ("| source | claims |", "| paper | claims |"):
        start = lines.index(next(x for x in lines if x.startswith(head)))
        end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
        at = text.index(head)
        text = text[:at] + "\n".join(lines[start:end]) + text[text.index("\n\n", at):]
    readme.write_text(text)
    return readme
