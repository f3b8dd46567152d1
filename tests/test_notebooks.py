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
    assert "planned: none of these notebooks needs CUDA" in result.stdout  # not in the registry
    assert "demo/01_works [gpu] ok" in result.stdout


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


# -- issue 14: runs that never corrupt results -----------------------------------------------

_SETUP_WITH_LEDGER = """\
import os
import companion
from companion.verdicts import Verdict
PROFILES = {"ci": dict(scale=1.0), "gpu": dict(scale=2.0)}
cfg, ledger, device = companion.start(PROFILES, globals())
"""
_FIGURE_AND_CLAIM = """\
figure = ledger.figure_path("f")
figure.parent.mkdir(parents=True, exist_ok=True)
figure.write_text("figure")
ledger.check('R-D1', 1.0, Verdict('reproduced', '> 0', 'one at the largest k.'))
ledger.save()
"""


def _ledger_notebook(path):
    """A notebook that records R-D1 at rooted_loss/01_loss_family's id, and fails while a file
    FAIL exists beside it."""
    nb = _notebook(_SETUP_WITH_LEDGER,
                   "if os.path.exists('FAIL'):\n    raise RuntimeError('deliberate failure')",
                   _FIGURE_AND_CLAIM)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_concurrent_runs_in_one_folder_use_private_sockets_and_all_succeed(tmp_path):
    """Item 1: kernels bound `kernel-ipc-N` sockets in the notebook's folder, N the first free
    number, so runs of notebooks of one folder raced (and a read-only folder failed). Item 12:
    --log-output streams the notebook's output."""
    import os

    folder = tmp_path / "demo"
    folder.mkdir()
    cell = "import glob, time\nprint('sockets here:', glob.glob('kernel-ipc*'))\ntime.sleep(1)\nprint('done', scale)"
    paths = []
    for k in range(4):
        nbformat.write(_notebook(cell), folder / f"0{k + 1}_n.ipynb")
        paths.append(folder / f"0{k + 1}_n.ipynb")
    env = {**os.environ, "COMPANION_RESULTS": str(tmp_path / "results")}
    procs = [subprocess.Popen([sys.executable, "-m", "companion", "run", str(p), "--out", str(tmp_path / f"out{k}.ipynb")]
                              + (["--log-output"] if k == 0 else []),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k, p in enumerate(paths)]
    results = [proc.communicate(timeout=300) for proc in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, out + err
    for k in range(4):
        executed = nbformat.read(tmp_path / f"out{k}.ipynb", as_version=4)
        printed = "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
        assert "sockets here: []" in printed and "done None" in printed
    assert "sockets here: []" in results[0][0] and "done None" in results[0][0]  # streamed
    assert "sockets here" not in results[1][0]
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in paths]  # nothing left behind


def test_an_interrupted_store_keeps_the_stored_notebook_and_a_failed_copy(tmp_path):
    """Item 2: SIGINT during `make store` wiped the stored notebook's outputs. Now the stored file
    is untouched, the partial run is kept as *.failed.ipynb outside notebooks/ with the cell
    that was running named, and nothing half-written is left in the notebook's folder."""
    import os
    import signal
    import time

    folder = tmp_path / "nbs" / "demo"
    folder.mkdir(parents=True)
    path = folder / "01_slow.ipynb"
    nbformat.write(_notebook("print('first')", "open('STARTED', 'w').close()\nimport time\ntime.sleep(120)"), path)
    before = path.read_bytes()
    env = {**os.environ, "COMPANION_RESULTS": str(tmp_path / "results")}
    proc = subprocess.Popen([sys.executable, "-m", "companion", "run", str(path), "--out", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 180
    while not (folder / "STARTED").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0, out + err
    assert path.read_bytes() == before  # the stored notebook is untouched
    failed = tmp_path / "results" / "failed" / "demo" / "01_slow.failed.ipynb"
    meta = nbformat.read(failed, as_version=4).metadata["companion"]["failed"]
    assert meta["cell"] == 3 and "open('STARTED'" in meta["error"], meta
    assert "open('STARTED'" in out + err and str(failed) in out + err
    assert sorted(p.name for p in folder.iterdir()) == ["01_slow.ipynb", "STARTED"]  # no partial file
    assert notebooks.discover(root=tmp_path / "nbs") == [path]


def test_a_failed_run_replaces_the_previous_ledger_and_the_report_lists_it(tmp_path):
    """Items 3 and 4: a run that failed after one that succeeded left the old 'reproduced'
    ledger (and figures) beside the failed notebook, and REPORT.md did not say which failed."""
    import json

    nbs = tmp_path / "nbs"
    path = _ledger_notebook(nbs / "rooted_loss" / "01_loss_family.ipynb")
    results = tmp_path / "results"
    first = _cli("reproduce", "--notebooks", str(nbs), env_results=results)
    assert first.returncode == 0, first.stdout + first.stderr
    ledger = results / "ledger" / "ci" / "rooted_loss__01_loss_family.json"
    figures = results / "ci" / "rooted_loss" / "figures" / "01_loss_family"
    assert json.loads(ledger.read_text())["claims"][0]["verdict"] == "reproduced" and figures.is_dir()
    executed = results / "ci" / "rooted_loss" / "01_loss_family.ipynb"
    previous_output = executed.read_bytes()
    (path.parent / "FAIL").touch()
    second = _cli("reproduce", "--notebooks", str(nbs), env_results=results)
    assert second.returncode == 1
    record = json.loads(ledger.read_text())
    assert record["state"] == "failed" and record["cell"] == 3 and record["claims"] == []
    assert "RuntimeError: deliberate failure" in record["error"] and "cell 3" in record["error"]
    assert not figures.exists()  # set aside, not shown beside the failed run
    aside = results / ".previous" / "ci" / "rooted_loss__01_loss_family"
    assert (aside / "ledger.json").is_file() and (aside / "figures" / "f.png").is_file()
    assert executed.read_bytes() == previous_output  # the previous output file is untouched
    assert (results / "ci" / "rooted_loss" / "01_loss_family.failed.ipynb").is_file()
    text = (results / "REPORT.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| R-D1 |"))
    assert "**failed**" in row and row.endswith("| failed (ci) |") and "reproduced" not in row
    assert "## Failed runs" in text and "| rooted_loss/01_loss_family | ci |" in text
    assert "failed" in report_totals(text)


def report_totals(text):
    return next(line for line in text.splitlines() if line.startswith("**Totals over"))


# -- issue 14: bad input is refused before a kernel starts, in one line ---------------------

@pytest.fixture
def no_kernel(monkeypatch, tmp_path):
    """Fail the test if a kernel would start; results go to a private folder."""
    import papermill

    def refuse(*args, **kwargs):
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)
    monkeypatch.setenv("COMPANION_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def _table_notebook(path, table='{"ci": dict(epochs=2, z_max=1.0, k_values=[1, 2], loss="ce"), "gpu": dict(epochs=5)}'):
    params = "profile = 'ci'\nseed = 0\nepochs = None\nz_max = None\nk_values = None\nloss = None"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(_notebook(f"PROFILES = {table}", parameters=params), path)
    return path


def _error(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("args, message", [
    (["-p", "profile", "gpu"], "use --profile gpu"),                                  # item 6
    (["-p", "z_max", "abc"], "knob 'z_max' expects float"),                           # item 7
    (["-p", "k_values", "3"], "knob 'k_values' expects list of int"),
    (["-p", "z_max", "[1, 2]"], "knob 'z_max' expects float"),
    (["-p", "epochs", "0"], "knob 'epochs' counts something and must be >= 1"),      # item 8
    (["-p", "epochs", "-3"], "must be >= 1"),
    (["--profile", "foo"], "unknown profile 'foo'"),                                  # item 9
    (["-p", "k_values", "[1, 2"], "is not valid YAML"),                               # item 10
])
def test_bad_input_is_refused_up_front_in_one_line(tmp_path, no_kernel, capsys, args, message):
    from companion.pipeline import cli

    path = _table_notebook(tmp_path / "nbs" / "demo" / "01_t.ipynb")
    assert cli.main(["run", str(path), *args]) == 2
    err = _error(capsys)
    assert message in err and len(err.splitlines()) == 1, err
    if "foo" in args:
        assert "ci, gpu" in err and not (no_kernel / "foo").exists()


@pytest.mark.parametrize("target, message", [("missing.ipynb", "no such notebook"), ("", "is a folder")])
def test_a_missing_notebook_or_a_folder_is_one_line(tmp_path, no_kernel, capsys, target, message):
    from companion.pipeline import cli

    assert cli.main(["run", str(tmp_path / target)]) == 2
    err = _error(capsys)
    assert message in err and len(err.splitlines()) == 1


def test_reproduce_refuses_an_unknown_profile_before_running_anything(tmp_path, no_kernel, capsys):
    from companion.pipeline import cli

    _table_notebook(tmp_path / "nbs" / "demo" / "01_t.ipynb")
    assert cli.main(["reproduce", "--notebooks", str(tmp_path / "nbs"), "--profile", "foo"]) == 2
    assert "unknown profile 'foo'" in _error(capsys)
    assert not no_kernel.exists()


def test_a_profile_that_needs_cuda_is_refused_on_a_cpu_unless_the_run_is_custom(tmp_path, no_kernel, capsys, monkeypatch):
    """Item 6: a CUDA profile on a CPU is refused (a custom smoke run may run); reproduce skips
    those notebooks with a line each and runs the others."""
    from companion.pipeline import cli

    monkeypatch.setattr(notebooks, "cuda_available", lambda: False)
    cuda_nb = _table_notebook(tmp_path / "nbs" / "benchmarks" / "01_training_speed.ipynb")
    cpu_nb = _table_notebook(tmp_path / "nbs" / "dynamical_loss" / "01_schedule.ipynb")
    assert cli.main(["run", str(cuda_nb), "--profile", "gpu"]) == 2
    assert "needs a CUDA device" in _error(capsys)
    notebooks.preflight(cuda_nb, "gpu", {"epochs": 1})  # a smoke run with overrides of its own
    notebooks.preflight(cpu_nb, "gpu", {})
    ran = []
    monkeypatch.setattr(notebooks, "run", lambda path, profile, *a, **k: ran.append(path) or notebooks.RunResult(
        path, path, profile, 0.0))
    assert cli.main(["reproduce", "--notebooks", str(tmp_path / "nbs"), "--profile", "gpu"]) == 0
    out = capsys.readouterr().out
    assert "skip benchmarks/01_training_speed: its gpu profile needs CUDA" in out
    assert ran == [cpu_nb]


def test_normalize_gives_the_installed_kernels_display_name():
    """Item 15: Lab's autosave rewrote 'Python 3' to the installed kernel's 'Python 3 (companion)'."""
    from pathlib import Path

    nb = notebooks.normalize(_notebook("print(1)"))
    assert nb.metadata["kernelspec"] == {"display_name": "Python 3 (companion)", "language": "python", "name": "python3"}
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert f"KERNEL_DISPLAY_NAME := {notebooks.KERNEL_DISPLAY_NAME}" in makefile
    assert '--display-name "$(KERNEL_DISPLAY_NAME)"' in makefile


def test_only_reproduce_store_and_plain_gpu_runs_write_the_profiles_record(tmp_path):
    """Item 17: a plain ci run, an --out run, papermill and Lab rewrote results/ledger/ci/."""
    results = tmp_path / "results"
    path = _ledger_notebook(tmp_path / "nbs" / "rooted_loss" / "01_loss_family.ipynb")
    record = results / "ledger" / "ci" / "rooted_loss__01_loss_family.json"
    scratch = results / "custom" / "ledger" / "ci" / "rooted_loss__01_loss_family.json"
    assert _cli("run", str(path), env_results=results).returncode == 0  # a plain ci run
    assert scratch.is_file() and not record.exists()
    assert (results / "custom" / "ci" / "rooted_loss" / "figures" / "01_loss_family" / "f.png").is_file()
    assert not notebooks.writes_record(path, "ci", tmp_path / "x.ipynb")  # --out elsewhere
    assert notebooks.writes_record(path, "ci", path) and notebooks.writes_record(path, "gpu", None)
    assert not notebooks.writes_record(path, "ci", None)
    assert _cli("run", str(path), "--out", str(path), env_results=results).returncode == 0  # make store
    assert record.is_file()
