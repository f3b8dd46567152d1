"""companion.runs on a real local Ray cluster: faults, resume, equal results, security.

The cluster (``ray start --head``, 2 CPUs, no dashboard, token authentication on) and every
driver run inside a network namespace this module makes (``unshare --net``; loopback only), so
nothing leaves the machine and Ray advertises 127.0.0.1. The package is copied to a scratch
folder first, and the cluster and drivers import that copy: edits to the working tree while the
tests run change neither the code nor the source digest. At the end the module ends the
processes of its namespace, by id. Needs root (CI runs as root) and the ``cluster`` extra.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

import runs_cluster  # noqa: E402

pytestmark = pytest.mark.skipif(runs_cluster.available() is not None,
                                reason=str(runs_cluster.available()))


def stored(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("output.pkl"))


@pytest.fixture(scope="module")
def cluster():
    with runs_cluster.Cluster() as c:
        yield c


@pytest.fixture(scope="module")
def basics(cluster):
    """One driver for two tests (a driver costs seconds): equal grids, and a failing run."""
    out, _ = cluster.driver("basics", "--n", "6", "--cache", str(cluster.scratch / "fail"))
    return out


def test_ray_and_local_give_identical_results_for_the_same_seeds(basics):
    out = basics["same"]
    assert out["ray"] == out["local"]  # exactly: same seeds, one thread, same code path
    assert len({r["loss"] for r in out["ray"]}) == 6
    # and a recipe of the package (nc_protocol: digits MLPs, CE and MSE, two seeds), but its timing
    assert out["nc_ray"] == out["nc_local"]
    assert len({r["history"][-1]["train_loss"] for r in out["nc_ray"]}) == 4


def test_a_worker_killed_mid_run_is_retried_and_gives_the_same_result(cluster):
    hold = cluster.scratch / "hold"
    hold.mkdir()
    log = cluster.scratch / "kill.log"
    out, _ = cluster.driver("kill-worker", "--n", "3", "--hold", str(hold), "--log", str(log))
    assert len(out["killed"]) == 1
    attempts = [line.split() for line in log.read_text().splitlines()]
    seed1 = [pid for seed, pid in attempts if seed == "1"]
    assert len(seed1) == 2 and int(seed1[0]) == out["killed"][0] != int(seed1[1])  # retried elsewhere
    assert out["results"] == out["reference"] and out["computed"] == 3


def test_a_driver_killed_part_way_resumes_from_the_cache(cluster):
    cache = cluster.scratch / "resume"
    args = ("grid", "--n", "8", "--sleep", "0.8", "--cache", str(cache))
    first = cluster.spawn(*args)
    deadline = time.monotonic() + 90
    while stored(cache) < 3 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    first.kill()
    first.communicate()
    done = stored(cache)
    assert 3 <= done < 8, f"{done} runs stored when the driver was killed"
    out, stdout = cluster.driver(*args)
    assert (out["cached"], out["computed"]) == (done, 8 - done)
    assert f"{done} from the cache, {8 - done} computed" in stdout
    import runs_recipes

    fresh = [runs_recipes.run(runs_recipes.Toy(seed=s)) for s in range(8)]
    assert [r["loss"] for r in out["results"]] == pytest.approx([r["loss"] for r in fresh], rel=1e-9)


def test_a_run_that_raises_names_its_config_and_the_others_are_kept(basics):
    first, second = basics["fail"]["first"], basics["fail"]["second"]
    assert first["failed"] == [2] and (first["cached"], first["computed"]) == (0, 3)
    assert "run 2: Toy(seed=2" in first["message"] and "fail=True" in first["message"]
    assert "seed 2 was told to fail" in first["message"]
    assert first["results"][2] is None and [r["seed"] for r in first["results"] if r] == [0, 1, 3]
    assert second["failed"] == [2] and (second["cached"], second["computed"]) == (3, 0)
    assert second["results"] == first["results"]


def test_an_entry_written_by_other_code_is_never_reused(cluster):
    cache = cluster.scratch / "other"
    other = cluster.scratch / "other-code"
    shutil.copytree(cluster.snapshot, other)
    with open(other / "companion" / "losses.py", "a") as f:
        f.write("\n# a change elsewhere in the package\n")
    args = ("grid", "--n", "3", "--cache", str(cache))
    written, _ = cluster.driver(*args, "--executor", "local", env={"PYTHONPATH": str(other)})
    assert written["computed"] == 3 and stored(cache) == 3
    out, _ = cluster.driver(*args)  # this code, on the cluster
    assert (out["cached"], out["computed"]) == (0, 3) and stored(cache) == 6  # beside the others
    assert out["results"] == written["results"]  # (the change touched no run)


def test_the_cluster_requires_its_token_and_has_no_dashboard(cluster):
    wrong, _ = cluster.driver("security", "--check", "wrong", env={"RAY_AUTH_TOKEN": "not-the-token"})
    assert "InvalidAuthToken" in wrong["refused"], wrong
    none, _ = cluster.driver("security", "--check", "none")
    assert "AuthenticationError" in none["refused"] and "no authentication token" in none["refused"], none
    assert wrong["dashboard"] == none["dashboard"] == "closed"


def _grid_notebooks(folder: Path, count: int) -> list[Path]:
    import test_runs_notebook

    (folder / "demo").mkdir(parents=True)
    return [test_runs_notebook.grid_notebook(folder / "demo" / f"0{i + 1}_grid.ipynb") for i in range(count)]


def test_companion_run_sends_a_notebooks_grid_to_the_cluster(cluster):
    import test_runs_notebook

    (notebook,) = _grid_notebooks(cluster.scratch / "nb-run", 1)
    out = cluster.scratch / "nb-run" / "out.ipynb"
    proc = cluster.run([str(runs_cluster.RAY.parent / "companion"), "run", str(notebook), "--out", str(out),
                        "-p", "n", "4", "--executor", "ray", "--address", runs_cluster.ADDRESS],
                       env={"COMPANION_EXECUTOR": "local"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = test_runs_notebook.outputs(out)
    assert "runs.map: 4 run(s) of runs_recipes.run [ray]: 0 from the cache, 4 computed" in text, text


def test_reproduce_runs_whole_notebooks_as_ray_tasks_and_brings_their_files_back(cluster):
    import test_runs_notebook

    folder = cluster.scratch / "nb-tasks"
    _grid_notebooks(folder, 2)
    results = cluster.scratch / "nb-tasks-results"
    proc = cluster.run([str(runs_cluster.RAY.parent / "companion"), "reproduce", "--notebooks", str(folder),
                        "-p", "n", "2", "--executor", "ray", "--address", runs_cluster.ADDRESS,
                        "--notebook-tasks"],
                       env={"COMPANION_RESULTS": str(results)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    executed = sorted(results.rglob("0*_grid.ipynb"))
    assert [p.name for p in executed] == ["01_grid.ipynb", "02_grid.ipynb"], proc.stdout
    for path in executed:  # executed on a worker, its own runs local there
        assert "run(s) of runs_recipes.run [local]: 0 from the cache, 2 computed" in test_runs_notebook.outputs(path)
