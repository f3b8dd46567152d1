"""The notebook pipeline: normalization, stored-notebook hygiene, `companion run/reproduce`."""

import subprocess
import sys

import nbformat
import pytest

from companion.pipeline import notebooks

STORED = notebooks.discover()


def _notebook(*sources, parameters="profile = 'ci'\nseed = 0\nscale = None"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def _cli(*args, env_results):
    return subprocess.run(
        [sys.executable, "-m", "companion", *args], capture_output=True, text=True,
        env={**__import__("os").environ, "COMPANION_RESULTS": str(env_results)},
    )


@pytest.mark.parametrize("path", STORED, ids=[notebooks.notebook_id(p) for p in STORED])
def test_stored_notebook_is_clean(path):
    assert notebooks.problems(path) == []


def test_normalize_strips_run_metadata_keeps_tags_and_is_idempotent():
    nb = _notebook("print(1)")
    nb.metadata["papermill"] = {"start_time": "2026-01-01", "duration": 3.0}
    injected = nbformat.v4.new_code_cell('profile = "gpu"\nepochs = 3')
    injected.metadata["tags"] = ["injected-parameters"]
    injected.metadata["papermill"] = {"duration": 0.1}
    nb.cells.insert(1, injected)
    nb.cells[2].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00"}
    nb.cells[2].metadata["tags"] = []
    clean = notebooks.normalize(nb)
    assert "papermill" not in clean.metadata
    assert clean.metadata["companion"] == {"profile": "gpu", "parameters": {"profile": "gpu", "epochs": 3}}
    assert clean.cells[0].metadata["tags"] == ["parameters"]
    assert clean.cells[1].id == "injected-parameters"
    assert "execution" not in clean.cells[2].metadata and "tags" not in clean.cells[2].metadata
    assert notebooks.normalize(clean) == clean


def test_parse_value_reads_yaml_scalars_and_lists():
    assert notebooks.parse_value("3") == 3
    assert notebooks.parse_value("1e-3") == 1e-3
    assert notebooks.parse_value("true") is True
    assert notebooks.parse_value("[ce, ls]") == ["ce", "ls"]
    assert notebooks.parse_value("null") is None
    assert notebooks.parse_value("focal") == "focal"


def test_run_with_parameter_changes_the_computation(tmp_path):
    src = tmp_path / "nb.ipynb"
    nbformat.write(_notebook("print('answer', (scale or 1) * 2)"), src)
    out = tmp_path / "out.ipynb"
    result = _cli("run", str(src), "-p", "scale", "21", "--out", str(out), env_results=tmp_path)
    assert result.returncode == 0, result.stderr
    executed = nbformat.read(out, as_version=4)
    printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "answer 42" in printed
    assert executed.metadata["companion"]["parameters"]["scale"] == 21
    assert notebooks.problems(out) == []


def test_misspelled_parameter_fails_and_lists_declared_ones(tmp_path):
    src = tmp_path / "nb.ipynb"
    nbformat.write(_notebook("print(1)"), src)
    result = _cli("run", str(src), "-p", "scal", "2", env_results=tmp_path)
    assert result.returncode == 2
    assert "does not declare parameter(s) 'scal'" in result.stderr
    assert "scale = None" in result.stderr and "seed = 0" in result.stderr


def test_reproduce_reports_failing_cell_carries_on_and_exits_nonzero(tmp_path):
    root = tmp_path / "nbs" / "demo"
    root.mkdir(parents=True)
    nbformat.write(_notebook("x = 1", "raise RuntimeError('deliberate failure')"), root / "01_fails.ipynb")
    nbformat.write(_notebook("print('fine')"), root / "02_works.ipynb")
    result = _cli("reproduce", "--notebooks", str(tmp_path / "nbs"), env_results=tmp_path / "results")
    assert result.returncode == 1
    assert "[1/2] demo/01_fails [ci] FAILED" in result.stdout
    assert "RuntimeError: deliberate failure" in result.stdout
    assert "[2/2] demo/02_works [ci] ok" in result.stdout
    assert (tmp_path / "results" / "ci" / "demo" / "02_works.ipynb").exists()
    assert (tmp_path / "results" / "REPORT.md").exists()


def test_reproduce_an_unknown_paper_is_a_clear_error(tmp_path):
    result = _cli("reproduce", "--paper", "nc_loss", env_results=tmp_path)
    assert result.returncode == 2
    assert "no notebooks for paper 'nc_loss'" in result.stderr and "nc_losses" in result.stderr


def test_reproduce_gpu_prints_the_planned_device_minutes(tmp_path):
    root = tmp_path / "nbs" / "demo"
    root.mkdir(parents=True)
    nbformat.write(_notebook("print('fine')"), root / "01_works.ipynb")
    result = _cli("reproduce", "--profile", "gpu", "--notebooks", str(tmp_path / "nbs"), env_results=tmp_path / "r")
    assert "planned: unknown (" in result.stdout and "demo/01_works" in result.stdout  # not in the registry


def test_run_with_parameters_writes_under_results_custom(tmp_path):
    src = tmp_path / "nb.ipynb"
    nbformat.write(_notebook("print('answer', (scale or 1) * 2)"), src)
    result = _cli("run", str(src), "-p", "scale", "3", env_results=tmp_path / "results")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "results" / "custom" / "ci" / "nb.ipynb").exists()
    assert not (tmp_path / "results" / "ci").exists()


def _glossary():
    import yaml

    from companion.pipeline.claims import REGISTRY

    return yaml.safe_load((REGISTRY / "knobs.yaml").read_text())


@pytest.mark.parametrize("path", STORED, ids=[notebooks.notebook_id(p) for p in STORED])
def test_knobs_use_the_glossary_names(path):
    glossary = _glossary()
    knobs = [k for k in notebooks.declared_parameters(path) if k not in ("profile", "seed")]
    retired = {k: glossary["retired"][k] for k in knobs if k in glossary["retired"]}
    assert not retired, f"retired knob names (use the new ones): {retired}"
    unknown = [k for k in knobs if k not in glossary["knobs"]]
    assert not unknown, f"knobs missing from registry/knobs.yaml: {unknown}"


@pytest.mark.parametrize("path", STORED, ids=[notebooks.notebook_id(p) for p in STORED])
def test_each_knob_is_declared_once_and_matches_the_profile_table(path):
    from companion.pipeline.profiles import check_table, table_from_notebook

    table = table_from_notebook(path)
    assert table is not None, "no PROFILES table"
    check_table(table)
    declared = [k for k in notebooks.declared_parameters(path) if k not in ("profile", "seed")]
    assert sorted(declared) == sorted(table["ci"]), "the parameters cell and the ci row must list the same knobs"
    for name in ("gpu", "paper"):
        same = [k for k, v in table.get(name, {}).items() if table["ci"][k] == v]
        assert not same, f"profile {name!r} restates ci values for {same}: list only what differs"


INLINE_VERDICT = ("passed=", "verdict=", "expected=", "Verdict(", '"reproduced"', '"partially"',
                  '"not reproduced"', "not checked at this scale", '"undecided"')


@pytest.mark.parametrize("path", STORED, ids=[notebooks.notebook_id(p) for p in STORED])
def test_no_notebook_computes_a_verdict_inline(path):
    """Verdicts come from the rules in companion.verdicts; a notebook measures and calls them."""
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    found = [s for s in INLINE_VERDICT if s in code]
    assert not found, f"verdict logic in the notebook ({found}): move it into companion.verdicts"


@pytest.mark.parametrize("path", STORED, ids=[notebooks.notebook_id(p) for p in STORED])
def test_gpu_minutes_and_claims_are_stated_only_in_the_rendered_blocks(path):
    from companion.pipeline import claims, scaffold

    nb = nbformat.read(path, as_version=4)
    header = nb.cells[0].source
    outside = header.split(scaffold.GPU_BEGIN)[0] + header.split(scaffold.GPU_END)[-1]
    rest = "\n".join(c.source for c in nb.cells[1:])
    assert "Estimated gpu time" not in outside + rest, "gpu minutes belong to registry/notebooks.yaml"
    for claim in claims.claims_of(notebooks.notebook_id(path)):
        assert claim.statement[:60] not in rest, f"{claim.id}'s statement is restated: cite the id"
