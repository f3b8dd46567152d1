"""Running and storing notebooks: papermill underneath, with the checks papermill lacks.

* :func:`run` executes one notebook at a profile with papermill, refuses parameter names
  the notebook does not declare (papermill only warns), reports the failing cell, and
  normalizes the output.
* :func:`normalize` strips papermill's timing metadata and nbclient's timestamps, keeps
  tags and outputs, records the profile and parameters under ``metadata.companion``, and
  is idempotent, so stored notebooks diff cleanly.
* :func:`problems` lists what makes a stored notebook unfit for nbval (used by the tests).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml
from traitlets.config import Config

from .paths import notebooks_dir, results_dir
from .start import NOTEBOOK_ENV

KERNEL = "python3"
INJECTED_TAG = "injected-parameters"
# Environment for ci-profile kernels: one thread, so stored outputs do not depend on cores.
CI_ENV = {
    "COMPANION_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
# The kernel talks to papermill over local IPC sockets, not TCP: nothing listens on a port, and
# ipykernel stops printing its "running over TCP without encryption" warning once per notebook.
_KERNEL_CONFIG = Config({"KernelManager": {"transport": "ipc"}})
_CELL_METADATA_NOISE = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")


@dataclass
class RunResult:
    """The outcome of one notebook execution."""

    notebook: Path
    output: Path
    profile: str
    seconds: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# -- parameters -----------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``-p`` value as YAML (numbers, booleans, null, lists); ``1e-3`` is a float too."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def declared_parameters(path: Path) -> dict[str, str]:
    """Names and default source text of the notebook's ``parameters`` cell."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if not cells:
        raise ValueError(f"{path} has no cell tagged 'parameters'")
    declared: dict[str, str] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    declared[target.id] = ast.unparse(node.value) if node.value else ""
    return declared


def validate_parameters(path: Path, parameters: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming every undeclared parameter and listing the declared ones."""
    declared = declared_parameters(path)
    unknown = [name for name in parameters if name not in declared]
    if unknown:
        listing = "\n".join(f"  {name} = {default}" for name, default in declared.items())
        raise ValueError(
            f"{path.name} does not declare parameter(s) {', '.join(map(repr, unknown))}.\n"
            f"Declared parameters (name = default):\n{listing}"
        )


# -- execution -------------------------------------------------------------------------------


def is_custom(parameters: Mapping[str, Any]) -> bool:
    """A run with parameters of its own, by the ledger's rule (``ledger.Ledger.custom``): a knob
    set to a value, or a seed other than 0."""
    return bool(parameters.get("seed")) or any(
        value is not None for name, value in parameters.items() if name not in ("profile", "seed"))


def default_output(path: Path, profile: str, root: Path | None = None, custom: bool = False) -> Path:
    """``results/<profile>/<paper>/<name>.ipynb`` for a notebook under ``root`` (``notebooks/``);
    ``results/custom/<profile>/...`` for a run with parameters of its own (see ``ledger``)."""
    path = path.resolve()
    try:
        rel = path.relative_to((root or notebooks_dir()).resolve())
    except ValueError:
        rel = Path(path.name)
    return (results_dir() / "custom" if custom else results_dir()) / profile / rel


@contextlib.contextmanager
def _environment(extra: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(
    path: str | Path,
    profile: str = "ci",
    parameters: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    *,
    timeout: float | None = None,
    log_output: bool = False,
) -> RunResult:
    """Execute ``path`` at ``profile`` with papermill into ``out`` and normalize the result.

    Never raises for a failing cell: the result's ``error`` names the cell instead, so a
    batch can carry on. Raises ``ValueError`` for undeclared parameters before running.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    path = Path(path)
    params = {"profile": profile, **dict(parameters or {})}
    validate_parameters(path, params)
    output = Path(out) if out else default_output(path, profile, custom=is_custom(params))
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {**(CI_ENV if profile == "ci" else {}), NOTEBOOK_ENV: str(path.resolve())}
    error = None
    start = time.perf_counter()
    with _environment(env):
        try:
            papermill.execute_notebook(
                str(path), str(output), parameters=params, kernel_name=KERNEL,
                progress_bar=False, log_output=log_output, cwd=str(path.parent.resolve()),
                execution_timeout=timeout, config=_KERNEL_CONFIG,
            )
        except PapermillExecutionError as exc:
            error = f"cell {exc.cell_index} (execution count {exc.exec_count}): {exc.ename}: {exc.evalue}"
        except Exception as exc:  # kernel died, timeout, missing kernel ...
            error = f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    if output.exists():
        normalize_file(output)
    return RunResult(path, output, profile, seconds, error)


def notebook_id(path: Path) -> str:
    """``<paper>/<NN_topic>``, the name ledgers, the registry and the gpu plan use."""
    return f"{path.parent.name}/{path.stem}"


def discover(paper: str | None = None, root: Path | None = None) -> list[Path]:
    """Stored notebooks, sorted by paper then number; ``paper`` restricts to one folder."""
    root = root or notebooks_dir()
    folders = [root / paper] if paper else sorted(p for p in root.iterdir() if p.is_dir())
    if paper and not folders[0].is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ValueError(f"no notebooks for paper {paper!r}; known: {', '.join(known)}")
    return [nb for folder in folders for nb in sorted(folder.glob("[0-9]*.ipynb"))]


# -- normalization ---------------------------------------------------------------------------


def _parameters_from_injected(nb: nbformat.NotebookNode) -> dict[str, Any] | None:
    for cell in nb.cells:
        if INJECTED_TAG in cell.metadata.get("tags", []):
            values = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                    with contextlib.suppress(ValueError):
                        values[node.targets[0].id] = ast.literal_eval(node.value)
            return values
    return None


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without run-specific metadata; idempotent."""
    nb = copy.deepcopy(nb)
    meta = nb.metadata
    injected = _parameters_from_injected(nb)
    if injected is not None:
        meta["companion"] = {"profile": injected.get("profile", "ci"), "parameters": injected}
    for key in ("papermill", "widgets", "jupytext"):  # run and authoring metadata
        meta.pop(key, None)
    for index, cell in enumerate(nb.cells):
        for key in _CELL_METADATA_NOISE:
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]
        if INJECTED_TAG in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"
        elif "id" not in cell:
            cell["id"] = f"cell-{index}"
    return nb


def normalize_file(path: str | Path) -> bool:
    """Normalize a notebook file in place; returns True if it changed."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    clean = normalize(nb)
    if clean == nb:
        return False
    nbformat.write(clean, path)
    return True


def problems(path: str | Path) -> list[str]:
    """Why a stored notebook is unfit for nbval and readers; empty when it is fine."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    found = []
    if normalize(nb) != nb:
        found.append("not normalized (run `companion normalize` on it)")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not any("parameters" in c.metadata.get("tags", []) for c in code):
        found.append("no cell tagged 'parameters'")
    if any(c.execution_count is None for c in code if c.source.strip()):
        found.append("has unexecuted code cells")
    for cell in code:
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"error output in cell {cell.get('id')}")
            if output.output_type == "stream" and output.get("name") == "stderr":
                found.append(f"stderr output in cell {cell.get('id')}: {output.text[:80]!r}")
    profile = nb.metadata.get("companion", {}).get("profile")
    if profile != "ci":
        found.append(f"not executed at profile 'ci' by `companion run` (found {profile!r})")
    return found
