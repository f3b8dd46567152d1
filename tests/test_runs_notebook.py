"""A converted notebook killed half-way through its grid and rerun (issue 16's acceptance).

nc_losses/06 maps ``companion.experiments.nc_protocol.run`` over its grid with
``companion.runs.map``; with a small override (one width, two lengths, one seed: 8 runs of about
half a second) it runs under ``companion run`` in a process tree this test kills (SIGKILL, by
pid) once half of the grid is in the cache. The rerun must take exactly those runs from the
cache, compute only the others, say so in its output, and record the measurements an
uninterrupted run records. The kernel imports a scratch copy of the package (edits to the
working tree meanwhile change neither the code nor its digest).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
NOTEBOOK = "nc_losses/06_equal_test_performance.ipynb"
OVERRIDES = ["-p", "widths", "[0.0625]", "-p", "epoch_grid", "[6, 12]", "-p", "seeds", "[0]"]
N = 8  # 1 width x 2 lengths x 1 seed x 4 losses


def stored(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("output.pkl"))


def outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def grid_notebook(path: Path) -> Path:
    """A small notebook of its own: a parameters cell, a toy grid through companion.runs.map
    (the recipe of tests/runs_recipes.py, which the Ray cluster's workers import)."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n = 8\nsleep = 0.0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(
        "import runs_recipes\nfrom companion import runs\n\n"
        "results = runs.map(runs_recipes.run, [runs_recipes.Toy(seed=s, sleep=sleep) for s in range(n)])")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        family = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in family:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=10)


def measurements(results: Path) -> list:
    (ledger,) = results.rglob("nc_losses__06_equal_test_performance.json")
    return [claim["measured"] for claim in json.loads(ledger.read_text())["claims"]]


@pytest.fixture
def setting(tmp_path):
    snapshot = tmp_path / "py"
    shutil.copytree(ROOT / "src" / "companion", snapshot / "companion",
                    ignore=shutil.ignore_patterns("__pycache__"))
    notebook = tmp_path / "notebooks" / NOTEBOOK
    notebook.parent.mkdir(parents=True)
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, notebook)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPANION_EXECUTOR", "COMPANION_RAY"))}
    env.update(PYTHONPATH=str(snapshot), COMPANION_RUNS=str(tmp_path / "cache"))
    return tmp_path, notebook, env


def companion_run(notebook: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "companion", "run", str(notebook), "--out", str(out), *OVERRIDES]


def test_a_converted_notebook_killed_half_way_recomputes_only_the_unfinished_runs(setting):
    tmp, notebook, env = setting
    cache = tmp / "cache"
    first = subprocess.Popen(companion_run(notebook, tmp / "first.ipynb"), cwd=tmp,
                             env={**env, "COMPANION_RESULTS": str(tmp / "r1")},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while stored(cache) < N // 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    kill_tree(first.pid)
    done = stored(cache)
    assert N // 2 <= done < N, f"{done} of {N} runs stored when the notebook was killed"

    rerun = subprocess.run(companion_run(notebook, tmp / "rerun.ipynb"), cwd=tmp,
                           env={**env, "COMPANION_RESULTS": str(tmp / "r2")},
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    line = f"runs.map: {N} run(s) of companion.experiments.nc_protocol.run [local]: {done} from the cache, " \
           f"{N - done} computed"
    assert line in outputs(tmp / "rerun.ipynb")
    assert stored(cache) == N

    fresh = subprocess.run(companion_run(notebook, tmp / "fresh.ipynb"), cwd=tmp,
                           env={**env, "COMPANION_RESULTS": str(tmp / "r3"), "COMPANION_RUNS": "off"},
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stdout[-2000:] + fresh.stderr[-2000:]
    assert measurements(tmp / "r2") == measurements(tmp / "r3")
