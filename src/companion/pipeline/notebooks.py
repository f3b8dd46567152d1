"""Running and storing notebooks: papermill underneath, with the checks papermill lacks.

* :func:`preflight` refuses a run before any kernel starts: a missing path, a parameter the
  notebook does not declare (papermill only warns), ``profile`` given as a parameter, an
  unknown profile, an override of the wrong type or a count below 1 (checked against the
  notebook's ``PROFILES`` table, read from its source), and a profile that needs CUDA on a
  machine without it (``registry/notebooks.yaml``; a run with overrides of its own may).
* :func:`run` executes one notebook at a profile with papermill. Each run is private: its
  kernel talks over IPC sockets in a temporary folder of its own (so runs of notebooks in one
  folder never race for socket names, and a read-only notebook folder works), and its output
  is written to a temporary file that replaces the target only when every cell succeeded. A
  failed or interrupted run leaves the previous file untouched, keeps its partial output as
  ``<name>.failed.ipynb`` (never inside ``notebooks/``: under ``results/failed/`` for a stored
  notebook) with the failing cell named, and writes a ledger in state ``failed`` where the
  run's ledger goes; the previous ledger and figures are set aside under
  ``results/.previous/`` before the run starts, so a failed run never sits beside an older
  verdict.
* Which runs write the profile's record (``results/ledger/<profile>/``): ``companion
  reproduce``, ``make store`` (a ci run whose output is the stored notebook itself) and a
  plain ``companion run`` at gpu or paper (its executed notebook is the committed record under
  ``results/<profile>/``). Every other run, a plain ci run, ``--out`` elsewhere, plain
  papermill and JupyterLab included, files its ledger and figures under ``results/custom/``.
* :func:`normalize` strips papermill's timing metadata and nbclient's timestamps, keeps
  tags and outputs, records the profile and parameters under ``metadata.companion``, sets
  the kernelspec to the project kernel's (so opening a stored notebook in Lab is not a
  diff), and is idempotent, so stored notebooks diff cleanly.
* :func:`problems` lists what makes a stored notebook unfit for nbval (used by the tests).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import yaml
from traitlets.config import Config

from .ledger import RECORD_ENV, ledger_path, write_failed
from .paths import notebooks_dir, results_dir
from .start import NOTEBOOK_ENV

KERNEL = "python3"
#: the display name `make install` gives the project kernel; stored notebooks carry it, so that
#: JupyterLab's autosave does not rewrite it
KERNEL_DISPLAY_NAME = "Python 3 (companion)"
KERNELSPEC = {"display_name": KERNEL_DISPLAY_NAME, "language": "python", "name": KERNEL}
INJECTED_TAG = "injected-parameters"
#: seconds a kernel may take to start (papermill's 60 s is too short for many runs at once on
#: 2 busy cores; a missing kernel fails at once anyway)
KERNEL_START_TIMEOUT = 180
FAILED_SUFFIX = ".failed.ipynb"
# Environment for ci-profile kernels: one thread, so stored outputs do not depend on cores.
CI_ENV = {
    "COMPANION_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
_CELL_METADATA_NOISE = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")


@dataclass
class RunResult:
    """The outcome of one notebook execution."""

    notebook: Path
    output: Path
    profile: str
    seconds: float
    error: str | None = None
    cell: int | None = None             # index of the failing cell in the executed notebook
    failed_output: Path | None = None   # the partial output of a failed run

    @property
    def ok(self) -> bool:
        return self.error is None


# -- parameters -----------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """A ``-p`` value as YAML (numbers, booleans, null, lists); ``1e-3`` is a float too.
    Raises ``ValueError`` (one line) for text that is not YAML, e.g. ``"[1, 2"``."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ValueError(f"-p value {text!r} is not valid YAML ({problem}); values are YAML: "
                         f"3, 1e-3, true, [1, 2], ce") from None
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


def check_path(path: str | Path) -> Path:
    """``path`` as a Path if it is a notebook file; ``ValueError`` (one line) otherwise."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such notebook")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a notebook (.ipynb) in it, or use "
                         f"`companion reproduce --notebooks {path}`")
    if path.suffix != ".ipynb":
        raise ValueError(f"{path} is not a notebook (.ipynb)")
    return path


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (imports torch: called only when a profile needs CUDA)."""
    import torch

    return torch.cuda.is_available()


def needs_cuda(path: Path, profile: str) -> bool:
    """Whether ``registry/notebooks.yaml`` says the notebook's ``profile`` needs CUDA (False
    for a notebook outside the registry)."""
    from . import claims

    try:
        return claims.notebook(notebook_id(Path(path))).needs_cuda(profile)
    except KeyError:
        return False


def _profile_table(path: Path) -> dict[str, dict[str, Any]] | None:
    from .profiles import table_from_notebook

    try:
        return table_from_notebook(path)
    except Exception:  # a table written with more than literals: the kernel will check it
        return None


def preflight(path: str | Path, profile: str, parameters: Mapping[str, Any] | None = None, *,
              check_cuda: bool = True) -> Path:
    """Every check a run can make before its kernel starts; raises ``ValueError`` naming the
    problem. Returns the notebook's path. See the module docstring for the list; ``check_cuda``
    False leaves out the CUDA check (``companion reproduce`` skips such notebooks instead)."""
    from .profiles import KNOWN_PROFILES, check_overrides, check_profile

    path = check_path(path)
    parameters = dict(parameters or {})
    if "profile" in parameters:
        raise ValueError(f"'profile' is not a -p parameter: use --profile {parameters['profile']}")
    table = _profile_table(path)
    check_profile(profile, tuple(table) if table else KNOWN_PROFILES)
    validate_parameters(path, parameters)
    seed = parameters.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if table:
        knobs = {k: v for k, v in parameters.items() if k in table.get("ci", {})}
        check_overrides(table, knobs)
    if check_cuda and not is_custom(parameters) and needs_cuda(path, profile) and not cuda_available():
        raise ValueError(
            f"{notebook_id(path)}: profile {profile!r} needs a CUDA device and this machine has "
            f"none (registry/notebooks.yaml); a smoke run with overrides of its own may run here "
            f"and goes to results/custom/, e.g. -p epochs 1")
    return path


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


def writes_record(path: Path, profile: str, out: str | Path | None) -> bool:
    """Whether a ``companion run`` writes the profile's record (see the module docstring): a ci
    run whose output is the stored notebook itself (``make store``), or a plain run at another
    profile (its executed notebook lands in ``results/<profile>/``)."""
    if out is not None:
        return profile == "ci" and Path(out).resolve() == Path(path).resolve()
    return profile != "ci"


def failed_output_path(output: Path, notebook: Path) -> Path:
    """Where the partial output of a failed run goes: beside ``output`` as ``<name>.failed.ipynb``,
    except for a stored notebook (output = the notebook, or inside ``notebooks/``), whose failed
    copy goes under ``results/failed/<paper>/`` so that ``notebooks/`` never holds a half run."""
    output = output.resolve()
    name = output.name.removesuffix(".ipynb") + FAILED_SUFFIX
    inside = output == notebook.resolve()
    with contextlib.suppress(ValueError):
        output.relative_to(notebooks_dir().resolve())
        inside = True
    if inside:
        return results_dir() / "failed" / output.parent.name / name
    return output.with_name(name)


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


def _kernel_config(folder: Path) -> Config:
    """IPC sockets in the run's private folder: no TCP port is opened, no two runs share a socket
    name (jupyter_client's default names them ``kernel-ipc-N`` in the working directory, the
    first free N, which concurrent runs race for), and the notebook's folder may be read-only."""
    return Config({"KernelManager": {"transport": "ipc", "ip": str(folder / "kernel-ipc")}})


def _install(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` atomically (a temporary file beside it, then a rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def _set_aside(ledger: Path, figures: Path, aside: Path) -> None:
    """Move the previous run's ledger and figures out of the way (into ``aside``)."""
    shutil.rmtree(aside, ignore_errors=True)
    for item, name in ((ledger, "ledger.json"), (figures, "figures")):
        if item.exists():
            aside.mkdir(parents=True, exist_ok=True)
            shutil.move(str(item), str(aside / name))


_ERROR_MARKER_TAG = "papermill-error-cell-tag"


def _without_error_markers(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without the markdown cells papermill inserts to point at an error (cell indices of
    its exceptions count without them)."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if _ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])]
    return nb


def _running_cell(nb: nbformat.NotebookNode) -> int | None:
    """The cell papermill was executing when the run stopped: the last one it started."""
    started = [i for i, c in enumerate(nb.cells)
               if c.get("metadata", {}).get("papermill", {}).get("status") not in (None, "pending")]
    return started[-1] if started else None


def _describe_cell(nb: nbformat.NotebookNode | None, index: int | None) -> str:
    if index is None:
        return "before any cell ran"
    text = f"cell {index}"
    if nb is not None and 0 <= index < len(nb.cells):
        cell = nb.cells[index]
        if cell.get("execution_count") is not None:
            text += f" (In [{cell.execution_count}])"
        first = next((line.strip() for line in cell.source.splitlines()
                      if line.strip() and not line.lstrip().startswith("#")), "")
        if first:
            text += f": `{first[:60]}`"
    return text


def run(
    path: str | Path,
    profile: str = "ci",
    parameters: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    *,
    timeout: float | None = None,
    log_output: bool = False,
    record: bool | None = None,
) -> RunResult:
    """Execute ``path`` at ``profile`` with papermill into ``out`` and normalize the result.

    ``record``: whether the run writes the profile's ledger (default: :func:`writes_record`);
    a run with parameters of its own never does. Never raises for a failing cell or a dead
    kernel: the result's ``error`` names the cell instead, so a batch can carry on. Raises
    ``ValueError`` for what :func:`preflight` refuses, before anything runs.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    path = preflight(path, profile, parameters)
    params = {"profile": profile, **dict(parameters or {})}
    if record is None:
        record = writes_record(path, profile, out)
    custom = is_custom(params) or not record
    output = Path(out) if out else default_output(path, profile, custom=custom)
    nb_id = notebook_id(path)
    root = results_dir() / "custom" if custom else results_dir()
    ledger = ledger_path(root, profile, nb_id)
    figures = root / profile / path.parent.name / "figures" / path.stem
    aside = results_dir() / ".previous" / ("custom" if custom else "") / profile / ledger.stem
    _set_aside(ledger, figures, aside)
    env = {**(CI_ENV if profile == "ci" else {}), NOTEBOOK_ENV: str(path.resolve()),
           RECORD_ENV: "1" if record else "0"}
    error = cell = None
    workdir = Path(tempfile.mkdtemp(prefix="companion-run-"))
    partial = workdir / output.name
    streams = {"stdout_file": sys.stdout, "stderr_file": sys.stderr} if log_output else {}
    start = time.perf_counter()
    try:
        with _environment(env):
            try:
                papermill.execute_notebook(
                    str(path), str(partial), parameters=params, kernel_name=KERNEL, language="python",
                    progress_bar=False, cwd=str(path.parent.resolve()), execution_timeout=timeout,
                    start_timeout=KERNEL_START_TIMEOUT, config=_kernel_config(workdir), **streams,
                )
            except PapermillExecutionError as exc:
                cell, error = exc.cell_index, f"{exc.ename}: {exc.evalue}"
            except BaseException as exc:  # kernel died, timeout, missing kernel, Ctrl-C ...
                error = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
                if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: stop after cleanup
                    stopped = _finish_failed(path, partial, output, profile, error or "interrupted", None,
                                             custom, params, time.perf_counter() - start)
                    print(f"{nb_id} [{profile}] stopped at {stopped.error}"
                          + (f"; partial output: {stopped.failed_output}" if stopped.failed_output else ""),
                          file=sys.stderr, flush=True)
                    raise
        seconds = time.perf_counter() - start
        if error is None:
            normalize_file(partial)
            _install(partial, output)
            shutil.rmtree(aside, ignore_errors=True)
            return RunResult(path, output, profile, seconds)
        return _finish_failed(path, partial, output, profile, error, cell, custom, params, seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _finish_failed(path: Path, partial: Path, output: Path, profile: str, error: str,
                   cell: int | None, custom: bool, params: Mapping[str, Any],
                   seconds: float) -> RunResult:
    """Keep a failed run's partial output as ``*.failed.ipynb`` naming the failing cell, and write
    the failed ledger."""
    error = " ".join(str(error).split())  # one line
    nb, failed = None, None
    if partial.exists():
        with contextlib.suppress(Exception):
            raw = nbformat.read(partial, as_version=4)
            nb = normalize(raw)
            if cell is None:
                cell = _running_cell(_without_error_markers(raw))
    where = _describe_cell(_without_error_markers(nb) if nb is not None else None, cell)
    message = f"{where}: {error}"
    if nb is not None:
        nb.metadata.setdefault("companion", {})["failed"] = {"cell": cell, "error": message}
        failed = failed_output_path(output, path)
        failed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, partial)
        _install(partial, failed)
    write_failed(notebook_id(path), profile, message, cell=cell, custom=custom,
                 parameters=params, seconds=seconds)
    return RunResult(path, output, profile, seconds, message, cell, failed)


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
    return [nb for folder in folders for nb in sorted(folder.glob("[0-9]*.ipynb"))
            if not nb.name.endswith((FAILED_SUFFIX, ".tmp.ipynb"))]


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
    meta["kernelspec"] = dict(KERNELSPEC)  # the installed project kernel's, as Lab would write it
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
