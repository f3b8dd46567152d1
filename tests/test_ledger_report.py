import json
from pathlib import Path

import pytest

from companion.pipeline import claims, report
from companion.pipeline.ledger import Ledger, format_value
from companion.pipeline.profiles import resolve
from companion.verdicts import Verdict


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_RESULTS", str(tmp_path))
    return tmp_path


def _ledger(profile, verdict_value):
    cfg = resolve(profile, {"ci": {"n": 1}, "gpu": {"n": 2}, "paper": {"n": 3}}, quiet=True)
    ledger = Ledger("rooted_loss/01_loss_family", cfg, seed=0)
    ledger.check("R-D1", 0.123456, Verdict("reproduced" if verdict_value else "not reproduced", "> 0"))
    ledger.check("R-D5", {"a": 1.0, "b": True}, Verdict("partially", "True"))
    return ledger


def test_ledger_json_has_everything(results):
    path = _ledger("ci", True).save()
    record = json.loads(path.read_text())
    assert path == results / "ledger" / "ci" / "rooted_loss__01_loss_family.json"
    assert record["profile"] == "ci" and record["parameters"] == {"n": 1} and record["seed"] == 0
    assert {"torch", "numpy", "device"} <= set(record["environment"])
    assert record["wall_seconds"] >= 0
    first = record["claims"][0]
    assert first["measured"] == 0.123456 and first["measured_text"] == "0.123"
    assert first["verdict"] == "reproduced" and first["passed"] is True
    assert first["statement"] == claims.get("R-D1").statement
    assert record["claims"][1]["verdict"] == "partially" and record["claims"][1]["passed"] is False
    assert record["state"] == "finished"
    assert {"cpu_model", "cpu_capability", "blas"} <= set(record["environment"])
    provenance = record["provenance"]
    assert len(provenance["commit"]) == 40 and isinstance(provenance["dirty"], bool)
    assert provenance["notebook_digest"] and provenance["statement_digests"]["R-D1"]


def test_a_run_with_its_own_parameters_is_filed_apart_from_the_profile(results):
    table = {"ci": {"n": 1}}
    custom = Ledger("rooted_loss/01_loss_family", resolve("ci", table, n=5, quiet=True), seed=0)
    other_seed = Ledger("rooted_loss/01_loss_family", resolve("ci", table, quiet=True), seed=3)
    for ledger, overridden in ((custom, ["n"]), (other_seed, [])):
        assert ledger.custom
        assert ledger.save() == results / "custom" / "ledger" / "ci" / "rooted_loss__01_loss_family.json"
        assert json.loads(ledger.path.read_text())["overridden"] == overridden
        assert ledger.figure_path("fig").parent == results / "custom" / "ci" / "rooted_loss" / "figures" / "01_loss_family"
    assert not (results / "ledger").exists()  # the profile's own record is untouched
    assert report.load_ledgers(results) == []  # and custom runs stay out of the report


def test_a_claim_takes_the_verdict_of_its_rule_and_unknowns_are_refused(results):
    cfg = resolve("ci", {"ci": {}}, quiet=True)
    ledger = Ledger("rooted_loss/01_loss_family", cfg)
    ledger.check("R-D1", 1, Verdict("not reproduced", "2"))
    ledger.check("R-D2", 1, Verdict("undecided", "2", "inside the dead zone"))
    assert [(e["verdict"], e["passed"]) for e in ledger.entries] == [("not reproduced", False), ("undecided", None)]
    with pytest.raises(ValueError, match="verdict must be one of"):
        Verdict("sort of", "2")
    with pytest.raises(TypeError, match="pass the Verdict of the claim's rule"):
        ledger.check("R-D3", 1, "reproduced")
    with pytest.raises(KeyError, match="not in the registry"):
        ledger.check("R-D99", 1, Verdict("reproduced", "2"))


def test_summary_shows_verdicts_and_no_measured_number(results):
    ledger = _ledger("ci", True)
    text = ledger.summary()
    assert text.splitlines()[0].split() == ["claim", "verdict", "expected"]
    assert "0.123" not in text and "reproduced" in text
    assert "R-D1 (reproduced): 0.123" in ledger.measurements()


def test_a_failed_run_writes_a_failed_ledger(results):
    from companion.pipeline.ledger import write_failed

    path = write_failed("rooted_loss/01_loss_family", "ci", "ValueError: boom", cell=7)
    record = json.loads(path.read_text())
    assert record["state"] == "failed" and record["cell"] == 7 and record["claims"] == []


def test_format_value():
    assert format_value(3.14159, 2) == "3.1"
    assert format_value([1.0, float("nan")]) == "[1, nan]"
    assert format_value({"x": True}) == "{x: True}"


def test_report_has_every_claim_of_every_ledger_with_ci_and_gpu_columns(results):
    _ledger("ci", True).save()
    _ledger("gpu", False).save()
    text = report.write().read_text()
    assert "| R-D1 |" in text and "| R-D5 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| R-D1 |"))
    assert "**reproduced**: 0.123" in row and "**not reproduced**: 0.123" in row
    assert row.endswith("| not reproduced (gpu) |")  # the larger scale decides
    assert "Totals over" in text
    for cid in claims.all_claims():
        assert f"| {cid} |" in text  # registered claims without a run still get a row


def test_claim_checked_by_two_notebooks_shows_both_and_combines(results):
    cfg = resolve("ci", {"ci": {}}, quiet=True)
    first = Ledger("unhinged/05_spherical_rescaled_lr", cfg)
    first.check("U-I4", 6.5, Verdict("reproduced", "> 1"))
    first.save()
    second = Ledger("unhinged/08_insights_small_data", cfg)
    second.check("U-I4", 1.1, Verdict("partially", "> 1"))
    second.save()
    row = next(line for line in report.build().splitlines() if line.startswith("| U-I4 |"))
    assert "05_spherical_rescaled_lr: **reproduced**: 6.5" in row
    assert "08_insights_small_data: **partially**: 1.1" in row
    assert "| partially (ci) |" in row


def test_combine_verdicts():
    assert report.combine_verdicts(["reproduced", "not checked at this scale"]) == "partially checked"
    assert report.combine_verdicts(["reproduced", "not reproduced"]) == "partially"
    assert report.combine_verdicts(["not reproduced", "not reproduced"]) == "not reproduced"
    assert report.combine_verdicts([]) == "not checked at this scale"


def test_readme_quotes_the_current_report_totals():
    """The README's results-at-a-glance line must not go stale when verdicts change."""
    root = Path(__file__).resolve().parents[1]
    report_text = (root / "results" / "REPORT.md").read_text()
    for start in ("**Totals over", "**The papers' own"):
        line = next(l for l in report_text.splitlines() if l.startswith(start))
        assert line.rstrip() in (root / "README.md").read_text(), f"README's '{start}' line differs from results/REPORT.md: run companion report --readme"
    assert report_text == report.build(report.load_ledgers(root / "results")), "results/REPORT.md is stale: run companion report --readme"


def test_an_unchecked_claim_shows_its_note_in_the_report(results):
    cfg = resolve("ci", {"ci": {}}, quiet=True)
    ledger = Ledger("rooted_loss/01_loss_family", cfg)
    ledger.check("R-D1", "mlp on digits", Verdict("not checked at this scale", "x", "ours 9,000 images/s"))
    ledger.check("R-D2", 1.0, Verdict("reproduced", "x", "not shown"))
    ledger.save()
    text = report.build()
    row = next(line for line in text.splitlines() if line.startswith("| R-D1 |"))
    assert "**not checked at this scale**: ours 9,000 images/s" in row
    row = next(line for line in text.splitlines() if line.startswith("| R-D2 |"))
    assert "**reproduced**: not shown" in row  # the rule's note is the one-line summary


# -- issue 14 item 14: provenance, stale ledgers, consistent records --------------------------

def _fresh_ledger(notebook="rooted_loss/01_loss_family", claim="R-D1", verdict="reproduced"):
    cfg = resolve("ci", {"ci": {}}, quiet=True)
    ledger = Ledger(notebook, cfg)
    ledger.check(claim, 1.0, Verdict(verdict, "> 0", "Gap 0.0126 at the largest k. More words."))
    return ledger


def test_report_marks_a_claim_stale_when_its_notebook_or_statement_changed(results, tmp_path, monkeypatch):
    import shutil

    from companion.pipeline import ledger as ledger_module
    from companion.pipeline.paths import notebooks_dir

    nbs = tmp_path / "nbs"
    (nbs / "rooted_loss").mkdir(parents=True)
    stored = nbs / "rooted_loss" / "01_loss_family.ipynb"
    shutil.copy(notebooks_dir() / "rooted_loss" / "01_loss_family.ipynb", stored)
    monkeypatch.setenv("COMPANION_NOTEBOOK", str(stored))
    _fresh_ledger().save()
    row = lambda: next(l for l in report.build(notebooks_root=nbs).splitlines() if l.startswith("| R-D1 |"))
    assert "stale" not in row() and row().endswith("| reproduced (ci) |")
    nb = json.loads(stored.read_text())
    nb["cells"][-1]["source"] = "# edited after the run\n" + "".join(nb["cells"][-1]["source"])
    stored.write_text(json.dumps(nb))
    assert "⚠ stale" in row() and row().endswith("| reproduced (ci, stale) |")
    text = report.build(notebooks_root=nbs)
    assert "## Stale ledgers" in text and "notebook changed since the run" in text
    shutil.copy(notebooks_dir() / "rooted_loss" / "01_loss_family.ipynb", stored)  # back as it was
    assert "stale" not in row()
    record = json.loads((results / "ledger" / "ci" / "rooted_loss__01_loss_family.json").read_text())
    record["provenance"]["statement_digests"]["R-D1"] = "0" * 16  # the registry's statement changed
    assert ledger_module.stale_reasons(record, nbs) == ["statement of R-D1 changed since the run"]


def test_no_ledger_of_a_deleted_notebook_is_read(results, tmp_path):
    _fresh_ledger().save()
    record = json.loads((results / "ledger" / "ci" / "rooted_loss__01_loss_family.json").read_text())
    record["notebook"] = "rooted_loss/99_deleted"
    (results / "ledger" / "ci" / "rooted_loss__99_deleted.json").write_text(json.dumps(record))
    assert [r["notebook"] for r in report.load_ledgers(results)] == ["rooted_loss/01_loss_family"]


COMMITTED = sorted((Path(__file__).resolve().parents[1] / "results" / "ledger").glob("*/*.json"))


@pytest.mark.parametrize("path", COMMITTED, ids=[f"{p.parent.name}/{p.stem}" for p in COMMITTED])
def test_committed_ledger_is_fresh_consistent_and_registered(path):
    """A committed ledger's notebook exists, its claims are registered, each claim's `passed`
    agrees with its verdict, and neither its notebook nor a claim's statement changed since it
    was written (re-run the notebook: `make store NB=...`, or at gpu `companion run NB --profile gpu`)."""
    from companion.pipeline import ledger as ledger_module
    from companion.pipeline.paths import notebooks_dir
    from companion.verdicts import passed_of

    record = json.loads(path.read_text())
    assert (notebooks_dir() / f"{record['notebook']}.ipynb").is_file(), "ledger of a deleted notebook"
    assert record.get("state", "finished") == "finished", f"a failed run: {record.get('error')}"
    registered = claims.all_claims()
    for entry in record["claims"]:
        assert entry["id"] in registered, f"{entry['id']} is not in the registry"
        assert entry["passed"] == passed_of(entry["verdict"]), f"{entry['id']}: passed disagrees with its verdict"
    assert ledger_module.stale_reasons(record) == []


def test_a_notebook_run_outside_companion_run_files_its_ledger_as_scratch(results, monkeypatch):
    """Issue 14 item 17: Lab and plain papermill (no $COMPANION_RECORD) no longer rewrite the
    profile's record."""
    import companion
    from companion.pipeline.ledger import RECORD_ENV

    namespace = {"profile": "ci", "seed": 0, "n": None}
    monkeypatch.delenv(RECORD_ENV, raising=False)
    run = companion.start({"ci": dict(n=1)}, namespace, notebook="rooted_loss/01_loss_family", quiet=True)
    assert run.ledger.custom and run.ledger.path.parent == results / "custom" / "ledger" / "ci"
    monkeypatch.setenv(RECORD_ENV, "1")
    run = companion.start({"ci": dict(n=1)}, namespace, notebook="rooted_loss/01_loss_family", quiet=True)
    assert not run.ledger.custom and run.ledger.path.parent == results / "ledger" / "ci"


# -- issue 17 items 9-11 and issue 15 item 1: a report a reader can scan ---------------------

def test_report_totals_by_source_paper_claims_first_and_partially_kept_apart(results):
    cfg = resolve("ci", {"ci": {}}, quiet=True)
    ledger = Ledger("rooted_loss/01_loss_family", cfg)
    ledger.check("R-D1", 1.0, Verdict("partially", "x", "half failed."))
    ledger.check("R-D2", 1.0, Verdict("partially checked", "x", "half not run."))
    ledger.save()
    text = report.build()
    lines = text.splitlines()
    start = lines.index("By source of the claim:")
    header, rows = lines[start + 2], lines[start + 4:start + 9]
    assert header.split(" | ")[3:5] == ["partially", "partially checked"]
    assert rows[0].startswith("| the papers' claims |")
    totals = next(line for line in lines if line.startswith("**Totals over"))
    assert "1 partially," in totals and "1 partially checked," in totals
    papers = lines[lines.index(totals) - 1]  # the papers' own claims come first
    assert papers.startswith("**The papers' own") and "not run" in papers  # R-D1, R-D2 are derived
    table = lines[lines.index("| claim | source | statement | paper value | ci | gpu | verdict |", 0):]
    sources = [l.split(" | ")[1] for l in table[2:] if l.startswith("| R-")]
    order = {s: i for i, s in enumerate(claims.SOURCES)}
    assert sources == sorted(sources, key=order.get) and sources[0] == "paper"  # the paper's claims first


def test_each_claim_gets_a_one_line_summary_with_links_to_the_full_record(results):
    cfg = resolve("ci", {"ci": {}}, quiet=True)
    ledger = Ledger("rooted_loss/01_loss_family", cfg)
    measured = {f"key {i}": float(i) for i in range(80)}  # a measurement of over 1,000 characters
    ledger.check("R-D1", measured, Verdict("reproduced", "x", "Max gap 0.0126 at k = 1000 (|a| < 1). " + "More. " * 50))
    ledger.check("R-D2", measured, Verdict("reproduced", "x"))
    ledger.save()
    lines = report.build().splitlines()
    for cid in ("R-D1", "R-D2"):
        row = next(line for line in lines if line.startswith(f"| {cid} |"))
        ci = row.split(" | ")[4]
        assert len(ci) < report.SUMMARY_CHARS + 200, ci
        assert "[notebook](../notebooks/rooted_loss/01_loss_family.ipynb)" in ci
        assert "[ledger](ledger/ci/rooted_loss__01_loss_family.json)" in ci
    row = next(line for line in lines if line.startswith("| R-D1 |"))
    assert "**reproduced**: Max gap 0.0126 at k = 1000 (\\|a\\| < 1). [notebook]" in row  # the first sentence, pipes escaped
    assert row.count(" | ") == 6  # the table keeps its 7 columns


def test_a_gpu_measurement_says_where_it_was_measured(results):
    path = _ledger("gpu", True).save()
    record = json.loads(path.read_text())
    record["environment"].update(device="cuda", device_name="NVIDIA H100 80GB HBM3")
    path.write_text(json.dumps(record))
    _ledger("ci", True).save()
    row = next(line for line in report.build().splitlines() if line.startswith("| R-D1 |"))
    ci, gpu = row.split(" | ")[4:6]
    assert "(CUDA: NVIDIA H100 80GB HBM3)" in gpu and "CUDA" not in ci
    record["environment"].update(device="cpu", cpu_model="AMD EPYC 9654")
    path.write_text(json.dumps(record))
    row = next(line for line in report.build().splitlines() if line.startswith("| R-D1 |"))
    assert "(CPU: AMD EPYC 9654)" in row.split(" | ")[5]


def test_the_notebook_digest_follows_code_not_prose_nor_outputs(tmp_path):
    import nbformat

    from companion.pipeline.ledger import notebook_digest

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# header"), nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "01_x.ipynb"
    nbformat.write(nb, path)
    before = notebook_digest(path)
    nb.cells[0].source = "# header, re-rendered"
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1")]
    nbformat.write(nb, path)
    assert notebook_digest(path) == before
    nb.cells[1].source = "x = 2"
    nbformat.write(nb, path)
    assert notebook_digest(path) != before


def test_sync_readme_copies_the_headlines_and_tables(tmp_path):
    report_text = "\n".join([
        "**The papers' own 2 claims:** 2 reproduced.  ", "**Totals over 3 claims:** 3 reproduced.", "",
        "| source | claims |", "| --- | --- |", "| paper | 2 |", "",
        "| paper | claims |", "| --- | --- |", "| `x` | 3 |", ""])
    readme = tmp_path / "README.md"
    readme.write_text("intro\n**The papers' own 1 claims:** old\n**Totals over 1 claims:** old\n\n"
                      "| source | claims |\n| --- | --- |\n| old | 1 |\n\ntext\n\n| paper | claims |\n| --- | --- |\n| old | 1 |\n\nend\n")
    report.sync_readme(report_text, readme)
    text = readme.read_text()
    assert "**Totals over 3 claims:** 3 reproduced." in text and "**The papers' own 2 claims:**" in text
    assert "| paper | 2 |" in text and "| `x` | 3 |" in text and "| old |" not in text
    assert text.endswith("end\n") and "text" in text
