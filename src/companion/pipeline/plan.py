"""Fitting the gpu reproduction into one device session.

A lent H100 runs one command for at most 10 minutes and a session for 30 device-minutes in
all (machine start included), so ``companion reproduce --profile gpu`` is split into
commands. The minutes of each notebook's gpu profile come from its last gpu ledger when one
exists (measured wall time plus kernel start), and otherwise from the estimate written in
``registry/notebooks.yaml`` with its basis (e.g. "4 x 20 ResNet-18 epochs at 1.4 s").
``companion plan`` packs the notebooks into commands and says whether the total fits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .claims import notebooks
from .notebooks import discover, notebook_id
from .paths import results_dir

#: kernel start, imports and dataset decoding that a ledger's wall time does not include
STARTUP_MINUTES = 0.25
#: minutes of a 30-minute session taken by starting the machine and moving files
SESSION_OVERHEAD_MINUTES = 3.0


@dataclass(frozen=True)
class Item:
    notebook: str  # "<paper>/<NN_topic>"
    minutes: float
    source: str  # "measured" or "estimated: <basis>"


def estimates() -> dict[str, Item]:
    """The estimates of ``registry/notebooks.yaml``."""
    return {nb: Item(nb, info.gpu_minutes, f"estimated: {info.basis}") for nb, info in notebooks().items()}


def measured(profile: str = "gpu", root: Path | None = None) -> dict[str, Item]:
    """Minutes of each notebook's last ledger at ``profile`` (wall time plus start-up)."""
    folder = (root or results_dir()) / "ledger" / profile
    items = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        minutes = record["wall_seconds"] / 60 + STARTUP_MINUTES
        items[record["notebook"]] = Item(record["notebook"], round(minutes, 2), "measured")
    return items


def items(notebooks: list[str] | None = None, profile: str = "gpu") -> list[Item]:
    """One item per notebook (all stored notebooks by default), measured before estimated."""
    if notebooks is None:
        notebooks = [notebook_id(p) for p in discover()]
    known = {**estimates(), **measured(profile)}
    missing = [nb for nb in notebooks if nb not in known]
    if missing:
        raise KeyError(f"no gpu estimate for {', '.join(missing)}: add it to registry/notebooks.yaml")
    return [known[nb] for nb in notebooks]


def pack(work: list[Item], per_command: float = 9.0) -> list[list[Item]]:
    """First-fit decreasing: commands of at most ``per_command`` minutes each."""
    too_long = [i.notebook for i in work if i.minutes > per_command]
    if too_long:
        raise ValueError(f"longer than one command ({per_command} min): {', '.join(too_long)}")
    commands: list[list[Item]] = []
    for item in sorted(work, key=lambda i: -i.minutes):
        for command in commands:
            if sum(i.minutes for i in command) + item.minutes <= per_command:
                command.append(item)
                break
        else:
            commands.append([item])
    return commands


def describe(commands: list[list[Item]], budget: float = 30.0, profile: str = "gpu") -> str:
    """The commands to type and whether they fit the session budget."""
    lines = []
    for n, command in enumerate(commands, 1):
        minutes = sum(i.minutes for i in command)
        paths = " ".join(f"notebooks/{i.notebook}.ipynb" for i in command)
        lines.append(f"# command {n}: {minutes:.1f} min")
        lines.append(f"companion run {paths} --profile {profile}")
    total = sum(i.minutes for c in commands for i in c)
    measured_total = sum(i.minutes for c in commands for i in c if i.source == "measured")
    available = budget - SESSION_OVERHEAD_MINUTES
    verdict = "fits" if total <= available else "DOES NOT FIT"
    lines.append(
        f"# total {total:.1f} min ({measured_total:.1f} measured, {total - measured_total:.1f} estimated) "
        f"of {available:.0f} usable in a {budget:.0f}-minute session: {verdict}"
    )
    return "\n".join(lines)
