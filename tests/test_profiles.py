import pytest

from companion.pipeline.profiles import check_overrides, resolve, table_from_notebook, table_from_source

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


def test_a_profile_may_only_change_knobs_of_ci():
    with pytest.raises(ValueError, match="'gpu' sets \\['b'\\], which 'ci' does not define"):
        resolve("ci", {"ci": {"a": 1}, "gpu": {"b": 2}}, quiet=True)
    with pytest.raises(ValueError, match="needs a 'ci' row"):
        resolve("gpu", {"gpu": {"a": 1}}, quiet=True)


def test_gpu_and_paper_rows_list_only_what_differs():
    table = {"ci": {"epochs": 2, "lr": 0.1, "loss": "ce"}, "gpu": {"epochs": 50}, "paper": {"lr": 0.05}}
    assert dict(resolve("gpu", table, quiet=True)) == {"epochs": 50, "lr": 0.1, "loss": "ce"}
    assert dict(resolve("paper", table, quiet=True)) == {"epochs": 2, "lr": 0.05, "loss": "ce"}


TYPED = {"ci": {"z_points": 201, "z_max": 10.0, "k_values": [1, 2.5], "loss": "ce", "fast": False,
                "epochs": 3, "seeds": [0, 1], "record_every": 5, "margin": 0}}


@pytest.mark.parametrize("name, value, message", [
    ("z_points", "abc", "knob 'z_points' expects int \\(ci value 201\\), got str 'abc'"),
    ("k_values", 3, "knob 'k_values' expects list of float or int"),
    ("z_max", [1, 2], "knob 'z_max' expects float .* got list of int"),
    ("fast", 1, "knob 'fast' expects bool"),
    ("loss", 3, "knob 'loss' expects str"),
    ("z_points", 2.5, "expects int"),
    ("epochs", 0, "knob 'epochs' counts something and must be >= 1, got 0"),
    ("epochs", -3, "must be >= 1"),
    ("record_every", 0, "must be >= 1"),
    ("k_values", ["a"], "expects list of"),
])
def test_overrides_are_checked_against_the_type_of_the_ci_value(name, value, message):
    with pytest.raises(ValueError, match=message):
        check_overrides(TYPED, {name: value})


def test_well_typed_overrides_pass():
    check_overrides(TYPED, {"z_points": 3, "z_max": 2, "k_values": [1, 2, 4.0], "loss": "ls",
                            "fast": True, "epochs": 1, "seeds": [3], "margin": 0})
    check_overrides(TYPED, {"z_points": None})


def test_a_table_is_read_from_a_notebook_without_running_it(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os\nPROFILES = {'ci': dict(seeds=list(range(3)), lr=1e-3, n=35_000),"
                                          " 'gpu': dict(n=2 ** 4)}\ncfg = 1")]
    nbformat.write(nb, tmp_path / "x.ipynb")
    assert table_from_notebook(tmp_path / "x.ipynb") == {"ci": {"seeds": [0, 1, 2], "lr": 1e-3, "n": 35_000},
                                                          "gpu": {"n": 16}}
    with pytest.raises(NameError):
        table_from_source("PROFILES = {'ci': dict(x=__import__('os').getcwd())}")


def test_only_the_stored_run_keeps_its_regression_guards():
    table = {"ci": {"epochs": 2}, "gpu": {"epochs": 50}}
    assert resolve("ci", table, quiet=True).stored_run
    assert not resolve("ci", table, {"epochs": 1}, quiet=True).stored_run
    assert not resolve("ci", table, quiet=True, seed=3).stored_run
    assert not resolve("gpu", table, quiet=True).stored_run
