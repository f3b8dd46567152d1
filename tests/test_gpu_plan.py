import json

import pytest

from companion.pipeline import plan as gpu_plan
from companion.pipeline.plan import Item


def test_pack_respects_the_command_limit_and_keeps_every_notebook():
    work = [Item(f"p/{i:02d}", m, "estimated: x") for i, m in enumerate([5, 4, 3, 3, 2, 1, 0.5])]
    commands = gpu_plan.pack(work, per_command=6)
    assert all(sum(i.minutes for i in c) <= 6 for c in commands)
    assert sorted(i.notebook for c in commands for i in c) == sorted(i.notebook for i in work)
    assert len(commands) == 4  # 18.5 minutes need at least ceil(18.5 / 6) = 4 commands


def test_a_notebook_longer_than_a_command_is_refused():
    with pytest.raises(ValueError, match="longer than one command"):
        gpu_plan.pack([Item("p/01", 12, "measured")], per_command=9)


def test_describe_says_whether_the_session_budget_holds():
    fits = gpu_plan.describe([[Item("p/01", 10, "measured")], [Item("p/02", 5, "estimated: e")]], budget=30)
    assert "companion run notebooks/p/01.ipynb --profile gpu" in fits
    assert fits.endswith(": fits") and "10.0 measured, 5.0 estimated" in fits
    over = gpu_plan.describe([[Item("p/01", 9.5, "measured")]] * 3, budget=30)  # 28.5 > 27 usable
    assert over.endswith("DOES NOT FIT")


def test_measured_minutes_come_from_gpu_ledgers(tmp_path):
    folder = tmp_path / "ledger" / "gpu"
    folder.mkdir(parents=True)
    (folder / "p__01.json").write_text(json.dumps({"notebook": "p/01", "wall_seconds": 120.0}))
    item = gpu_plan.measured(root=tmp_path)["p/01"]
    assert item.minutes == pytest.approx(2.0 + gpu_plan.STARTUP_MINUTES)
    assert item.source == "measured"


def test_every_stored_notebook_has_a_gpu_estimate_with_a_basis():
    for item in gpu_plan.items():
        assert item.minutes > 0
        assert item.source == "measured" or len(item.source) > len("estimated: ") + 5


def test_every_gpu_profile_fits_one_device_session_together():
    """Issue 9: the whole gpu profile runs in one 30-minute H100 session; trims live in the notebooks."""
    commands = gpu_plan.pack(gpu_plan.items())
    assert gpu_plan.describe(commands, budget=30.0).endswith(": fits")


def test_no_estimate_is_left_untrimmed():
    assert not [i.notebook for i in gpu_plan.items() if "UNTRIMMED" in i.source]
