import pytest

from companion.pipeline.profiles import resolve

TABLE = {
    "ci": {"epochs": 2, "lr": 0.1},
    "gpu": {"epochs": 50, "lr": 0.1},
    "paper": {"epochs": 200, "lr": 0.05},
}


def test_profile_defaults_and_overrides(capsys):
    cfg = resolve("gpu", TABLE, epochs=None, lr=0.3)
    assert cfg.epochs == 50 and cfg.lr == 0.3 and cfg.profile == "gpu"
    assert cfg.overridden == ("lr",)
    assert "lr" in capsys.readouterr().out


def test_unknown_profile_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown profile 'cpu'.*Valid profiles: ci, gpu, paper"):
        resolve("cpu", TABLE)


def test_unknown_knob_suggests_the_close_one():
    with pytest.raises(ValueError, match="unknown knob 'epoch'. Did you mean 'epochs'"):
        resolve("ci", TABLE, quiet=True, epoch=3)


def test_config_is_read_only():
    cfg = resolve("ci", TABLE, quiet=True)
    with pytest.raises(AttributeError):
        cfg.lr = 1.0
    with pytest.raises(AttributeError, match="Valid knobs"):
        cfg.momentum


def test_inconsistent_table_is_rejected():
    with pytest.raises(ValueError, match="inconsistent"):
        resolve("ci", {"ci": {"a": 1}, "gpu": {"b": 2}}, quiet=True)
