"""companion.runs without Ray: keys, the content-keyed cache, failures, the local executor."""

from __future__ import annotations

import dataclasses
import enum
import math
from pathlib import Path
from typing import ClassVar

import joblib
import pytest

import runs_recipes as recipes
from companion import runs


@pytest.fixture(autouse=True)
def _no_stale_check(monkeypatch):
    # Other work may edit the package while this process runs; the staleness check (which
    # turns the cache off then) has a test of its own below.
    monkeypatch.setattr(runs, "_process_start", lambda: None)


def grid(n: int, log: Path | None = None, **fields) -> list[recipes.Toy]:
    return [recipes.Toy(seed=s, log=str(log) if log else None, **fields) for s in range(n)]


def executions(log: Path) -> list[int]:
    return [int(line.split()[0]) for line in log.read_text().splitlines()] if log.exists() else []


class Colour(enum.Enum):
    RED = 1


@dataclasses.dataclass(frozen=True)
class Declared:
    seed: int
    resources: ClassVar[runs.Resources] = runs.Resources(cpus=2, gpus=0.25)


def test_canonical_spells_equal_configs_alike_and_keeps_types_apart():
    a, b = recipes.Toy(seed=1, steps=3), recipes.Toy(seed=1, steps=3)
    assert runs.canonical_json(a) == runs.canonical_json(b)
    assert runs.canonical_json(a) != runs.canonical_json(recipes.Toy(seed=2, steps=3))
    assert '"__type__":"runs_recipes.Toy"' in runs.canonical_json(a)
    assert len({runs.canonical_json(v) for v in (1, 1.0, True)}) == 3
    assert runs.canonical((1, 2)) == runs.canonical([1, 2])
    assert runs.canonical({"b": 1, "a": (2.5,)}) == {"__dict__": {"a": [2.5], "b": 1}}
    assert runs.canonical(math.nan) == {"__float__": "nan"}
    assert runs.canonical(Colour.RED)["value"] == 1
    assert runs.canonical(Path("/x")) == "/x"
    with pytest.raises(TypeError, match="cannot key a run"):
        runs.canonical(object())


def test_key_names_function_config_source_torch_and_device(monkeypatch):
    device = runs.device_of("cpu", 1)
    key = runs.run_key(recipes.run, recipes.Toy(seed=0), device)
    assert key["fn"] == "runs_recipes.run" and '"seed":0' in key["config"]
    assert key["device"] == {"kind": "cpu", "threads": 1, "code_path": key["device"]["code_path"]}
    assert "+" in key["source"]  # the package's digest + the recipe file's (outside the package)
    # another CPU code path (the perturbed test pass) is another key
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert runs.run_key(recipes.run, recipes.Toy(seed=0), runs.device_of("cpu", 1)) != key
    assert runs.device_of("cuda") == {"kind": "cuda"}


def test_rerun_reuses_finished_runs_and_recomputes_only_changed_configs(tmp_path, capsys):
    log = tmp_path / "log"
    first = runs.map(recipes.run, grid(4, log), cache=tmp_path / "c")
    assert (first.cached, first.computed) == (0, 4)
    before = runs.tally()
    again = runs.map(recipes.run, grid(4, log), cache=tmp_path / "c")
    assert (again.cached, again.computed) == (4, 0) and again == first
    assert runs.tally() == {"cached": before["cached"] + 4, "computed": before["computed"]}
    assert "4 from the cache, 0 computed" in capsys.readouterr().out
    changed = grid(4, log)
    changed[2] = dataclasses.replace(changed[2], steps=7)
    third = runs.map(recipes.run, changed, cache=tmp_path / "c")
    assert (third.cached, third.computed) == (3, 1)
    assert executions(log) == [0, 1, 2, 3, 2]
    assert third[:2] == first[:2] and third[2] != first[2]


def test_a_code_change_reruns_and_the_old_entries_stay_apart(tmp_path, monkeypatch):
    log = tmp_path / "log"
    runs.map(recipes.run, grid(3, log), cache=tmp_path)
    real = runs._tree_digest
    monkeypatch.setattr(runs, "_tree_digest", lambda root: "other-code")
    other = runs.map(recipes.run, grid(3, log), cache=tmp_path)
    assert (other.cached, other.computed) == (0, 3)
    monkeypatch.setattr(runs, "_tree_digest", real)
    back = runs.map(recipes.run, grid(3, log), cache=tmp_path)
    assert (back.cached, back.computed) == (3, 0)
    assert executions(log) == [0, 1, 2, 0, 1, 2]


def test_an_entry_written_under_another_key_is_never_returned(tmp_path):
    configs = grid(2)
    runs.map(recipes.run, configs, cache=tmp_path)
    # rewrite every stored entry as if other code had written it in this slot
    outputs = sorted(tmp_path.rglob("output.pkl"))
    assert len(outputs) == 2
    for path in outputs:
        entry = joblib.load(path)
        entry["key"] = {**entry["key"], "source": "written-by-other-code"}
        entry["result"] = {"poisoned": True}
        joblib.dump(entry, path)
    store = runs.Store(tmp_path)
    key = runs.run_key(recipes.run, configs[0], runs.device_of("cpu", __import__("torch").get_num_threads()))
    assert store.get(key) == (False, None)
    rerun = runs.map(recipes.run, configs, cache=tmp_path)
    assert (rerun.cached, rerun.computed) == (0, 2)
    assert all("poisoned" not in r for r in rerun)


def test_a_failing_run_names_its_config_and_the_others_are_kept(tmp_path):
    log = tmp_path / "log"
    configs = grid(4, log)
    configs[1] = dataclasses.replace(configs[1], fail=True)
    with pytest.raises(runs.RunsFailed) as info:
        runs.map(recipes.run, configs, cache=tmp_path / "c")
    message = str(info.value)
    assert "1 of 4 run(s) of runs_recipes.run failed" in message
    assert "run 1: Toy(seed=1" in message and "fail=True" in message
    assert "ValueError: seed 1 was told to fail" in message
    assert isinstance(info.value.__cause__, ValueError)
    results = info.value.results
    assert results[1] is None and all(r["seed"] == i for i, r in enumerate(results) if i != 1)
    with pytest.raises(runs.RunsFailed) as again:
        runs.map(recipes.run, configs, cache=tmp_path / "c")
    assert (again.value.results.cached, again.value.results.computed) == (3, 0)
    assert executions(log) == [0, 1, 2, 3, 1]


def test_cache_location_and_off_switch(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_RUNS", str(tmp_path / "here"))
    assert runs.cache_dir() == tmp_path / "here"
    runs.map(recipes.run, grid(1), quiet=True)
    assert len(runs.Store(tmp_path / "here")) == 1
    monkeypatch.setenv("COMPANION_RUNS", "off")
    assert runs.cache_dir() is None
    assert runs.map(recipes.run, grid(1), quiet=True).computed == 1
    monkeypatch.delenv("COMPANION_RUNS")
    monkeypatch.setenv("COMPANION_RESULTS", str(tmp_path / "results"))
    assert runs.cache_dir() == tmp_path / "results" / "runs"


def test_executor_is_chosen_by_argument_or_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPANION_EXECUTOR", "nope")
    with pytest.raises(ValueError, match="executor must be one of"):
        runs.map(recipes.run, grid(1), cache=False)
    assert runs.map(recipes.run, grid(1), executor="local", cache=False).executor == "local"
    with pytest.raises(TypeError, match="unknown option"):
        runs.map(recipes.run, grid(1), executor="local", cahce=False)


def test_functions_defined_in_a_notebook_are_not_cached_and_not_sent_to_ray(tmp_path, capsys):
    namespace = {"__name__": "__main__", "recipes": recipes}
    exec("def train(config):\n    return recipes.run(config)\n", namespace)
    out = runs.map(namespace["train"], grid(2), cache=tmp_path)
    assert out.computed == 2 and len(runs.Store(tmp_path)) == 0
    assert "cache off: the function is defined in the notebook" in capsys.readouterr().out
    with pytest.raises(ValueError, match="importable module"):
        runs.map(namespace["train"], grid(1), executor="ray")
    with pytest.raises(ValueError, match="module-level function"):
        runs.map(lambda c: c, grid(1))


def test_a_module_changed_after_it_was_loaded_turns_the_cache_off(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "_process_start", lambda: 0.0)  # every loaded file is "newer"
    out = runs.map(recipes.run, grid(2), cache=tmp_path)
    assert out.computed == 2 and len(runs.Store(tmp_path)) == 0
    assert "changed on disk after this process loaded it" in capsys.readouterr().out


def test_resources_come_from_the_config_or_an_override():
    assert runs.resources_of(recipes.Toy(seed=0)) == runs.Resources()
    assert runs.resources_of(Declared(seed=0)) == runs.Resources(cpus=2, gpus=0.25)
    assert runs.resources_of(Declared(seed=0), {"cpus": 1, "gpus": 0}) == runs.Resources(1, 0)
    assert "resources" not in runs.canonical(Declared(seed=0))
    with pytest.raises(ValueError):
        runs.Resources(cpus=-1)


def test_the_cli_hands_executor_and_address_to_the_kernels(monkeypatch, capsys):
    from companion.pipeline import cli

    monkeypatch.setenv(runs.EXECUTOR_ENV, "local")  # restored after the test
    monkeypatch.setenv(runs.ADDRESS_ENV, "")
    args = cli.build_parser().parse_args(["run", "x.ipynb", "--executor", "ray", "--address", "10.0.0.5:6379"])
    cli._use_executor(args)
    import os

    assert os.environ[runs.EXECUTOR_ENV] == "ray" and os.environ[runs.ADDRESS_ENV] == "10.0.0.5:6379"
    assert cli.main(["reproduce", "--notebook-tasks"]) == 2
    assert "--notebook-tasks needs --executor ray" in capsys.readouterr().err


def test_the_local_executor_needs_no_ray_and_the_ray_executor_says_how_to_get_it():
    import os
    import subprocess
    import sys

    code = ("import sys\nsys.modules['ray'] = None  # as on a machine without Ray\n"
            "import runs_recipes\nfrom companion import runs\n"
            "print(len(runs.map(runs_recipes.run, [runs_recipes.Toy(seed=0)], cache=False, quiet=True)))\n"
            "try:\n    runs.map(runs_recipes.run, [runs_recipes.Toy(seed=0)], executor='ray', cache=False)\n"
            "except ImportError as exc:\n    print(exc)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["1", "the ray executor needs Ray: pip install -c constraints.txt -e '.[cluster]'"]
