"""Every profile's code path of every notebook runs to completion (issue 15 item 6).

The gpu and paper profiles are run on the CPU, shrunk to about ci's size by
``profiles.smoke_overrides`` (numbers and lists back to ci; dataset, architecture and switches
kept; ``smoke:`` in registry/notebooks.yaml shrinks the rest). Such runs have overrides of their
own, so they go to a throw-away results folder and never touch a committed ledger.
"""

import os
import subprocess
import sys

import pytest
import yaml

from companion.pipeline import claims, notebooks
from companion.pipeline.profiles import smoke_overrides, table_from_notebook

STORED = notebooks.discover()
CASES = [(path, profile) for path in STORED for profile in ("gpu", "paper")]


def test_smoke_overrides_shrink_numbers_and_keep_the_code_path():
    table = {"ci": {"epochs": 2, "dataset": "digits", "widths": [20], "lr": 0.1, "fast": False},
             "gpu": {"epochs": 50, "dataset": "cifar10", "widths": [20, 50, 100], "fast": True}}
    assert smoke_overrides(table, "gpu") == {"epochs": 2, "widths": [20]}
    sized = {"ci": {"n_train": 500, "loss": "ce"}, "gpu": {"n_train": None}}
    assert smoke_overrides(sized, "gpu") == {"n_train": 500}  # None: the whole set
    assert smoke_overrides(table, "gpu", {"epochs": 1}) == {"epochs": 1, "widths": [20]}
    assert smoke_overrides({"ci": {"loss": "ce"}, "gpu": {"loss": "ls"}}, "gpu") == {"loss": "ls"}


@pytest.mark.smoke
@pytest.mark.parametrize("path, profile", CASES, ids=[f"{notebooks.notebook_id(p)}-{q}" for p, q in CASES])
def test_every_profile_runs_on_a_smoke_scale(path, profile, tmp_path):
    table = table_from_notebook(path)
    info = claims.notebooks().get(notebooks.notebook_id(path))
    extra = (info.smoke if info else {}).get(profile, {})
    overrides = smoke_overrides(table, profile, extra)
    args = [a for name, value in overrides.items() for a in ("-p", name, yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n..."))]
    out = tmp_path / "out.ipynb"
    result = subprocess.run(
        # the gpu profile's 600 s per-cell limit is sized for an H100; a CPU gets an hour
        [sys.executable, "-m", "companion", "run", str(path), "--profile", profile, "--out", str(out),
         "--timeout", "3600", *args],
        capture_output=True, text=True, env={**os.environ, "COMPANION_RESULTS": str(tmp_path / "results")})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
