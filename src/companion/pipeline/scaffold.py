"""Notebook headers rendered from the registry, and the skeleton of a new notebook.

One source per fact: a notebook's header shows its claims (id, statement, source) and its gpu
line (estimated minutes, basis, which profiles need CUDA) between markers, rendered from
``registry/<paper>.yaml`` and ``registry/notebooks.yaml`` by ``companion headers``; the test
suite fails when a header differs from its rendering (``companion headers --check``).

``companion new <paper> <topic>`` writes ``notebooks/<paper>/NN_<topic>.ipynb`` with every
convention in place (header with the rendered blocks, parameters cell, profile table and
``companion.start``, environment cell, a work cell, the measurements and the checked summary)
and stores it executed at ci, so it passes ``make test`` unmodified.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from . import claims as registry
from .paths import notebooks_dir

CLAIMS_BEGIN = "<!-- claims: rendered from src/companion/registry by `companion headers`; edit the registry, not this table -->"
CLAIMS_END = "<!-- /claims -->"
GPU_BEGIN = "<!-- gpu: rendered from src/companion/registry/notebooks.yaml by `companion headers` -->"
GPU_END = "<!-- /gpu -->"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def claims_block(notebook_id: str) -> str:
    """The markdown table of the notebook's registered claims."""
    rows = registry.claims_of(notebook_id)
    if not rows:
        return "No claims are registered for this notebook yet (`src/companion/registry/`)."
    lines = ["| claim | statement | source |", "| --- | --- | --- |"]
    lines += [f"| {c.id} | {_escape(c.statement)} | {c.source} |" for c in rows]
    return "\n".join(lines)


def gpu_block(notebook_id: str) -> str:
    """The line on the gpu profile: estimated minutes, basis, and which profiles need CUDA."""
    try:
        info = registry.notebook(notebook_id)
    except KeyError:
        return "Not in `registry/notebooks.yaml` yet: no gpu estimate."
    cuda = ", ".join(info.cuda) if info.cuda else "none (every profile runs on a CPU)"
    text = (f"**Estimated gpu time: {info.gpu_minutes:g} min** ({info.basis}). "
            f"Profiles that need a CUDA device: {cuda}.")
    if info.paper_cpu_minutes is not None:
        text += f" **Paper profile on one CPU core: {duration(info.paper_cpu_minutes)}** ({info.paper_cpu_basis})."
    return text


def duration(minutes: float) -> str:
    """``minutes`` in the unit a reader would use: '40 s', '12 min', '6.5 h'."""
    if minutes < 1:
        return f"{minutes * 60:.0f} s"
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.2g} h" if minutes < 600 else f"{minutes / 60:.0f} h"


def _replace_block(text: str, begin: str, end: str, body: str) -> str | None:
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        return None
    return pattern.sub(lambda _: f"{begin}\n{body}\n{end}", text, count=1)


def render_header(source: str, notebook_id: str) -> str:
    """``source`` (a header cell) with its claims and gpu blocks rendered afresh; blocks that are
    missing are left missing (:func:`header_problems` reports them)."""
    for begin, end, body in ((CLAIMS_BEGIN, CLAIMS_END, claims_block(notebook_id)),
                             (GPU_BEGIN, GPU_END, gpu_block(notebook_id))):
        replaced = _replace_block(source, begin, end, body)
        if replaced is not None:
            source = replaced
    return source


def _id_of(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def header_problems(path: str | Path) -> list[str]:
    """Why a notebook's header is not its rendering from the registry (empty when it is)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return ["the first cell is not the markdown header"]
    source = nb.cells[0].source
    found = [f"header has no {what} block (add {begin!r} ... {end!r})"
             for what, begin, end in (("claims", CLAIMS_BEGIN, CLAIMS_END), ("gpu", GPU_BEGIN, GPU_END))
             if begin not in source or end not in source]
    if not found and render_header(source, _id_of(path)) != source:
        found.append("header differs from the registry: run `companion headers`")
    return found


def sync_header(path: str | Path) -> bool:
    """Re-render the header blocks of notebook ``path`` in place; True if it changed. Only the
    header cell changes, so the stored outputs stay valid."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        return False
    rendered = render_header(nb.cells[0].source, _id_of(path))
    if rendered == nb.cells[0].source:
        return False
    nb.cells[0].source = rendered
    nbformat.write(nb, path)
    return True


# -- a new notebook ----------------------------------------------------------------------------

_PARAMETERS = '''profile = "ci"  # ci | gpu | paper: the scale (see the profile table below)
seed = 0  # seeds Python, NumPy and torch
n_points = None  # number of grid points (an example knob: rename or replace it)'''

_SETUP = '''import numpy as np
import matplotlib.pyplot as plt

import companion

# ci in full; gpu and paper list only what differs from ci.
PROFILES = {
    "ci": dict(n_points=101),
    "gpu": dict(n_points=10_001),
    "paper": dict(),
}
cfg, ledger, device = companion.start(PROFILES, globals())'''

_WORK = '''# The work: call companion (losses, models, train, theory, ...) and measure.
grid = np.linspace(-1.0, 1.0, cfg.n_points)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(grid, grid**2)
ax.set(xlabel="x", ylabel="x^2", title="replace with the notebook's figure")
companion.plots.savefig(fig, "example");'''

_CLAIM = '''# One ledger.check per registered claim, judged by its rule in companion.verdicts.<paper>:
# ledger.check("X-1", measured, companion.verdicts.<paper>.x_1(measured))'''


def _header(paper: str, topic: str, notebook_id: str) -> str:
    title = registry.papers().get(paper)
    cite = (f"**Paper:** {title.authors}, *{title.title}*, {title.venue}, arXiv "
            f"[{title.arxiv}]({title.url}).") if title else f"**Paper:** `{paper}`."
    return "\n".join([
        f"# {topic.replace('_', ' ').capitalize()}", "", cite, "",
        "What this notebook checks, and what **ci**, **gpu** and **paper** mean here.", "",
        CLAIMS_BEGIN, claims_block(notebook_id), CLAIMS_END, "",
        GPU_BEGIN, gpu_block(notebook_id), GPU_END,
    ])


def new_notebook(paper: str, topic: str, root: Path | None = None) -> Path:
    """Write the skeleton ``<root>/<paper>/NN_<topic>.ipynb`` (NN: the next free number) and
    return its path; refuses a name that exists. ``companion new`` then stores it at ci."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", paper) or not re.fullmatch(r"[a-z][a-z0-9_]*", topic):
        raise ValueError("paper and topic must be lower_snake_case names")
    folder = (root or notebooks_dir()) / paper
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:2]) for p in folder.glob("[0-9][0-9]_*.ipynb")]
    if any(p.stem[3:] == topic for p in folder.glob("[0-9][0-9]_*.ipynb")):
        raise ValueError(f"{paper} already has a notebook on {topic!r}")
    path = folder / f"{max(numbers, default=0) + 1:02d}_{topic}.ipynb"
    notebook_id = _id_of(path)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (companion)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    parameters = nbformat.v4.new_code_cell(_PARAMETERS)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell(_header(paper, topic, notebook_id)),
        parameters,
        nbformat.v4.new_code_cell(_SETUP),
        nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\nprint(companion.repro.describe_environment())"),
        nbformat.v4.new_markdown_cell("## The measurement\n\nWhat is measured, and how the rule decides."),
        nbformat.v4.new_code_cell(_WORK),
        nbformat.v4.new_code_cell(_CLAIM),
        nbformat.v4.new_markdown_cell("## Summary\n\nWhat the verdicts say, in words."),
        nbformat.v4.new_code_cell("print(ledger.measurements())"),
        nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nledger.save()\nprint(ledger.summary())"),
    ]
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
    nbformat.write(nb, path)
    return path
