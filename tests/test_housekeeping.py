"""What a user trips over around the pipeline (issue 14 items 5, 16, 17): the test session's
throw-away results folders, `make lab` options, and what the README and `make help` say."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_pytest_process_removes_its_results_folder(tmp_path):
    """Item 5: each pytest run left a /tmp/companion-results-* folder behind (xdist: one per
    worker). The probe runs under the repository's conftest with two workers."""
    (tmp_path / "tmp").mkdir()
    probe = tmp_path / "test_probe.py"
    probe.write_text("import os\n\n"
                     "def test_a():\n    open(os.environ['PROBE'], 'a').write(os.environ['COMPANION_RESULTS'] + '\\n')\n\n"
                     "def test_b():\n    test_a()\n")
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "PROBE": str(tmp_path / "probe.txt")}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
                             "-n", "2", str(probe)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    used = set((tmp_path / "probe.txt").read_text().split())
    assert len(used) == 2 and all(str(tmp_path / "tmp") in p for p in used)  # one per worker
    assert not [p.name for p in (tmp_path / "tmp").glob("companion-results-*")]


def _make(*args):
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True)


def test_make_lab_passes_lab_args():
    """Item 16: `make lab` refused to start as root and took no options."""
    result = _make("-n", "lab", "LAB_ARGS=--allow-root --no-browser")
    assert result.returncode == 0, result.stderr
    assert "jupyter lab notebooks/ --allow-root --no-browser" in result.stdout


def test_readme_and_make_help_cover_install_durations_records_and_conda():
    """Item 17: `make install`, how long reproduce and test take, which runs rewrite
    results/ledger/ci/, and how environment.yml is meant to be used."""
    readme = (ROOT / "README.md").read_text()
    assert "make install" in readme and "make install" in _make("help").stdout
    assert "LAB_ARGS" in readme
    for phrase in ("`make reproduce` takes", "`make test` takes", "results/ledger/ci/", "environment.yml",
                   "download.pytorch.org/whl/cpu"):
        assert phrase in readme, phrase
    env_yml = (ROOT / "environment.yml").read_text()
    assert "download.pytorch.org/whl/cpu" in env_yml and "-c constraints.txt" in env_yml
