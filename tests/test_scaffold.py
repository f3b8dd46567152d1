"""Headers rendered from the registry, and `companion new`: a scaffolded notebook passes nbval."""

import os
import subprocess
import sys

import nbformat
import pytest

from companion.pipeline import notebooks, scaffold

STORED = notebooks.discover()


@pytest.mark.parametrize("path", STORED, ids=[notebooks.notebook_id(p) for p in STORED])
def test_stored_header_is_rendered_from_the_registry(path):
    assert scaffold.header_problems(path) == []


def test_rendering_puts_registry_facts_between_the_markers(tmp_path):
    folder = tmp_path / "rooted_loss"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        f"# t\n\n{scaffold.CLAIMS_BEGIN}\nstale\n{scaffold.CLAIMS_END}\n\n{scaffold.GPU_BEGIN}\nold\n{scaffold.GPU_END}\nafter")]
    path = folder / "01_loss_family.ipynb"
    nbformat.write(nb, path)
    assert scaffold.header_problems(path) == ["header differs from the registry: run `companion headers`"]
    assert scaffold.sync_header(path) and not scaffold.sync_header(path)
    text = nbformat.read(path, as_version=4).cells[0].source
    assert "| R-D1 |" in text and "Estimated gpu time: 0.25 min" in text and text.endswith("after")
    assert scaffold.header_problems(path) == []


def test_a_header_without_markers_is_reported(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# no blocks")]
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    assert len(scaffold.header_problems(tmp_path / "01_x.ipynb")) == 2


def test_a_scaffolded_notebook_is_stored_at_ci_and_passes_nbval(tmp_path):
    env = {**os.environ, "COMPANION_RESULTS": str(tmp_path / "results")}
    made = subprocess.run([sys.executable, "-m", "companion", "new", "zoo", "my_topic", "--root", str(tmp_path / "nbs")],
                          capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stdout + made.stderr
    path = tmp_path / "nbs" / "zoo" / "01_my_topic.ipynb"
    assert notebooks.problems(path) == []
    assert scaffold.header_problems(path) == []
    checked = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval-lax", "--nbval-current-env",
         "--rootdir", str(tmp_path), str(path)],
        capture_output=True, text=True, cwd=tmp_path, env={**env, "COMPANION_NOTEBOOK": str(path)})
    assert checked.returncode == 0, checked.stdout[-2000:]
    again = subprocess.run([sys.executable, "-m", "companion", "new", "zoo", "my_topic", "--root", str(tmp_path / "nbs")],
                           capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "already has a notebook" in again.stderr
