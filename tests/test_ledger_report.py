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
    assert "0.123 (reproduced)" in row and "0.123 (not reproduced)" in row
    assert "not reproduced (gpu)" in row  # the larger scale decides
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
    assert "05_spherical_rescaled_lr: 6.5 (reproduced)" in row
    assert "08_insights_small_data: 1.1 (partially)" in row
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
    line = next(l for l in report_text.splitlines() if l.startswith("**Totals over"))
    assert line in (root / "README.md").read_text(), "README totals differ from results/REPORT.md: copy the line"
    assert report_text == report.build(report.load_ledgers(root / "results")), "results/REPORT.md is stale: run companion report"


def test_an_unchecked_claim_shows_its_note_in_the_report(results):
    cfg = resolve("ci", {"ci": {}}, quiet=True)
    ledger = Ledger("rooted_loss/01_loss_family", cfg)
    ledger.check("R-D1", "mlp on digits", Verdict("not checked at this scale", "x", "ours 9,000 images/s"))
    ledger.check("R-D2", 1.0, Verdict("reproduced", "x", "not shown"))
    ledger.save()
    text = report.build()
    assert "mlp on digits (not checked at this scale): ours 9,000 images/s" in text
    assert "not shown" not in text
