import math
"""The gpu campaign (companion.pipeline.plan): what is left, in which order, how long, the
device command's shape, and bringing results back. The command itself runs in
tests/test_device_command.py."""

import io
import json
import tarfile

import pytest

from companion.pipeline import claims, cli, ledger
from companion.pipeline import plan as gpu_plan

CALIBRATORS = ["benchmarks/01_training_speed", "zoo/02_networks_all_losses",
               "nc_losses/06_equal_test_performance", "unhinged/09_cifar_classification"]


@pytest.fixture
def results(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("COMPANION_RESULTS", str(root))
    return root


def write_ledger(root, notebook, *, device="cuda", wall_seconds=60.0, fresh=True, state="finished"):
    provenance = ledger.provenance(notebook, [c.id for c in claims.claims_of(notebook)])
    if not fresh:
        provenance["notebook_digest"] = "0" * 16
    record = {"notebook": notebook, "profile": "gpu", "state": state, "wall_seconds": wall_seconds,
              "environment": {"device": device, "device_name": "stand-in"}, "provenance": provenance,
              "claims": [], "figures": []}
    path = ledger.ledger_path(root, "gpu", notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return record


def test_the_campaign_is_every_cuda_notebook_calibrators_first(results):
    items = gpu_plan.campaign()
    cuda = [nb for nb, info in claims.notebooks().items() if info.needs_cuda("gpu")]
    assert sorted(n.id for n in items) == sorted(cuda) and len(items) == 11
    assert [n.id for n in items[:4]] == CALIBRATORS  # speed benchmark, then side by side on streams
    rest = [n.estimate for n in items[4:]]
    assert rest == sorted(rest)  # then the shortest first
    assert all(n.state == "to run" and n.minutes == n.estimate for n in items)


def test_every_cuda_notebook_fits_one_device_command_and_states_its_basis():
    """A notebook longer than one command could never finish on the device; each estimate says
    what it rests on (the rates in registry/notebooks.yaml's header)."""
    for item in gpu_plan.campaign():
        info = claims.notebook(item.id)
        assert item.estimate <= 9.0, item.id
        assert info.basis and any(unit in info.basis for unit in (" s", "ms", "min")), item.id


def test_datasets_are_declared_and_have_an_offline_copy():
    entries = gpu_plan.cuda_notebooks()
    assert entries["unhinged/10_longtail_ood"]["data"] == ["cifar10", "mnist"]  # MNIST stands in for SVHN
    for nb, entry in entries.items():
        for name in entry.get("data", []):
            assert gpu_plan.offline_files(name), (nb, name)


def test_the_next_slice_fills_the_budget_in_order(results):
    campaign = gpu_plan.campaign()
    chosen = gpu_plan.next_slice(9.0)
    assert [n.id for n in chosen] == [n.id for n in campaign[:len(chosen)]]  # in the campaign's order
    assert [n.id for n in chosen][:1] == CALIBRATORS[:1]
    assert sum(n.minutes for n in chosen) <= 9.0 < sum(n.minutes for n in campaign[:len(chosen) + 1])
    # any budget: the campaign's order, skipping what no longer fits and taking a later one that does
    for budget in (2.2, 3.0, 4.5, 6.0):
        greedy, left = [], budget
        for n in campaign:
            if n.minutes <= left:
                greedy.append(n.id)
                left -= n.minutes
        assert [n.id for n in gpu_plan.next_slice(budget)] == greedy, budget
    with pytest.raises(ValueError, match="nothing fits"):
        gpu_plan.next_slice(0.5)


def test_fresh_cuda_ledgers_are_done_stale_and_cpu_ones_are_not(results):
    write_ledger(results, "benchmarks/01_training_speed")
    write_ledger(results, "zoo/02_networks_all_losses", fresh=False)
    write_ledger(results, "nc_losses/06_equal_test_performance", device="cpu")
    write_ledger(results, "unhinged/09_cifar_classification", state="failed")
    state = {n.id: n.state for n in gpu_plan.campaign()}
    assert state["benchmarks/01_training_speed"] == "measured"
    assert state["zoo/02_networks_all_losses"] == "stale: notebook changed since the run"
    assert state["nc_losses/06_equal_test_performance"] == "to run"
    assert state["unhinged/09_cifar_classification"] == "to run"
    assert gpu_plan.is_done("benchmarks/01_training_speed")
    assert not gpu_plan.is_done("zoo/02_networks_all_losses")
    assert "benchmarks/01_training_speed" not in [n.id for n in gpu_plan.next_slice()]


def test_a_changed_statement_makes_a_ledger_stale(results):
    notebook = "unhinged/09_cifar_classification"
    record = write_ledger(results, notebook)
    assert gpu_plan.stale_reasons(record) == []
    cid = next(iter(record["provenance"]["statement_digests"]))
    record["provenance"]["statement_digests"][cid] = "0" * 16
    assert gpu_plan.stale_reasons(record) == [f"statement of {cid} changed since the run"]


def test_estimates_scale_by_measured_over_estimated(results):
    benchmark = gpu_plan.cuda_notebooks()["benchmarks/01_training_speed"]["gpu_minutes"]
    # measured twice its estimate (the ledger's wall time plus the kernel start)
    write_ledger(results, "benchmarks/01_training_speed",
                 wall_seconds=(2 * benchmark - gpu_plan.STARTUP_MINUTES) * 60)
    ratio, count = gpu_plan.scale()
    assert count == 1 and ratio == pytest.approx(2.0)
    items = {n.id: n for n in gpu_plan.campaign()}
    assert items["benchmarks/01_training_speed"].minutes == pytest.approx(2 * benchmark)
    zoo = items["zoo/02_networks_all_losses"]
    assert zoo.minutes == pytest.approx(2 * zoo.estimate, abs=0.01)
    text = gpu_plan.describe_next()
    assert "estimates x 2.00, the ratio measured/estimated over 1 notebook(s) run on CUDA" in text


def test_the_device_command_is_one_line_under_2000_characters_for_any_slice(results):
    everything = gpu_plan.campaign()
    command = gpu_plan.device_command(everything)
    assert "\n" not in command and len(command) < gpu_plan.MAX_COMMAND_CHARS
    for piece in ("python3 -m pip install -q --no-index --no-deps", "--target", "COMPANION_DATA=$S/.carry",
                  "PYTHONPATH=", "python3 -m companion run notebooks/$n.ipynb --profile gpu", "timeout -k 10",
                  "cifar10 mnist||exit 4", "${OUT:?}/gpu-results.tgz", "python3 -m companion.pipeline.plan --done"):
        assert piece in command
    assert gpu_plan.carry_paths(everything) == [".whl", ".carry/cifar10_jpeg.npz", ".carry/mnist.npz"]


def test_plan_next_prints_comments_then_the_command(results, capsys):
    assert cli.main(["plan", "--next"]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if not line.startswith("#")]
    assert len(commands) == 1 and commands[0] == lines[-1]
    carry = json.loads(next(line for line in lines if line.startswith("# carry: "))[9:].split("  (")[0])
    assert carry == [".whl", ".carry/cifar10_jpeg.npz"]
    assert any("companion plan --unpack" in line for line in lines)


def test_plan_done_is_an_exit_status(results):
    write_ledger(results, "benchmarks/01_training_speed")
    assert cli.main(["plan", "--done", "benchmarks/01_training_speed"]) == 0
    assert cli.main(["plan", "--done", "zoo/02_networks_all_losses"]) == 1


def test_plan_lists_the_campaign(results, capsys):
    assert cli.main(["plan"]) == 0
    out = capsys.readouterr().out
    commands = math.ceil(sum(n.estimate for n in gpu_plan.campaign()) / 9.0)
    assert "11 notebook(s) need CUDA" in out and f"about {commands} device command(s)" in out


def _archive(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_unpack_refuses_anything_outside_the_gpu_results(results, tmp_path):
    bad = _archive(tmp_path / "bad.tgz", {"results/ledger/gpu/p__t.json": b"{}", "src/companion/x.py": b""})
    with pytest.raises(ValueError, match="unexpected member"):
        gpu_plan.unpack(bad)
    assert not (results / "ledger").exists()
    for name in ("../x.json", "/etc/x", "results/ledger/ci/p__t.json", "results/gpu/../../x"):
        assert not gpu_plan._allowed(name, "gpu"), name


def test_unpack_writes_ledgers_and_regenerates_the_report(results, tmp_path, capsys):
    record = {"notebook": "benchmarks/01_training_speed", "profile": "gpu", "state": "finished",
              "wall_seconds": 45.0, "environment": {"device": "cuda", "device_name": "NVIDIA H100"},
              "claims": [], "figures": []}
    good = _archive(tmp_path / "good.tgz", {
        "results/ledger/gpu/benchmarks__01_training_speed.json": json.dumps(record).encode(),
        "results/gpu/benchmarks/01_training_speed.ipynb": b"{}",
        "results/gpu/benchmarks/figures/01_training_speed/speed.png": b"png"})
    assert cli.main(["plan", "--unpack", str(good)]) == 0
    out = capsys.readouterr().out
    estimate = claims.notebook("benchmarks/01_training_speed").gpu_minutes
    assert f"benchmarks/01_training_speed: finished on cuda (NVIDIA H100), 1.00 min against {estimate:g} estimated" in out
    assert (results / "gpu/benchmarks/figures/01_training_speed/speed.png").read_bytes() == b"png"
    assert (results / "REPORT.md").is_file()


def test_reproduce_says_what_the_device_still_has_to_run(results):
    line = gpu_plan.summary_line(["benchmarks/01_training_speed", "rooted_loss/01_loss_family"])
    estimate = claims.notebook("benchmarks/01_training_speed").gpu_minutes
    assert line.startswith(f"planned: 1 notebook(s) need CUDA at the gpu profile, 0 measured there, 1 left ({estimate:g}")
    assert "companion plan --next" in line
    assert gpu_plan.summary_line(["rooted_loss/01_loss_family"]).startswith("planned: none")


@pytest.mark.parametrize("argv, expected", [
    (["run", "nb.ipynb", "--profile", "gpu"], 600.0),
    (["run", "nb.ipynb", "--profile", "gpu", "--timeout", "30"], 30.0),
    (["run", "nb.ipynb"], None),
    (["reproduce", "--profile", "gpu"], 600.0),
    (["reproduce", "--profile", "paper"], None),
])
def test_a_default_per_cell_timeout_at_the_gpu_profile(argv, expected):
    assert cli._cell_timeout(cli.build_parser().parse_args(argv)) == expected


def test_another_notebooks_path_in_the_environment_lends_no_digest(results, monkeypatch):
    """nbval sets $COMPANION_NOTEBOOK for its kernels; a test that follows in the same worker
    once wrote ledgers with that notebook's digest, which then read as stale."""
    from companion.pipeline.paths import notebooks_dir

    monkeypatch.setenv("COMPANION_NOTEBOOK", str(notebooks_dir() / "rooted_loss" / "01_loss_family.ipynb"))
    record = write_ledger(results, "unhinged/09_cifar_classification")
    assert gpu_plan.stale_reasons(record) == []


def test_every_paper_profile_that_needs_no_cuda_states_its_cpu_time():
    """A paper-scale run on a CPU can take hours: each such notebook says how long on one core
    and on what that rests, and `companion reproduce --profile paper` lists the long ones first."""
    cpu = [nb for nb, info in claims.notebooks().items() if not info.needs_cuda("paper")]
    assert len(cpu) == 20
    for nb in cpu:
        info = claims.notebook(nb)
        assert info.paper_cpu_minutes and info.paper_cpu_minutes > 0, nb
        assert "measured" in info.paper_cpu_basis or "extrapolated" in info.paper_cpu_basis, nb
    lines = cli.paper_cpu_estimates(cpu)
    long = [nb for nb in cpu if claims.notebook(nb).paper_cpu_minutes > 15]
    assert lines[0].startswith("estimated ") and f"{len(long)} of them long" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:]] == long
    assert cli.paper_cpu_estimates(["zoo/02_networks_all_losses"]) == []  # a CUDA notebook: none
