"""Issue 15 item 4: the exact command `companion plan --next` prints, run here on the CPU.

A stand-in ``python3`` first on PATH plays the device's interpreter: ``-m pip`` only records
its arguments, ``-m companion run NB`` writes what a finished gpu run leaves (the executed
notebook, a figure, a ledger measured on "cuda" with this checkout's provenance) or hangs
for the notebook named in ``FAKE_HANG``; everything else (the data check, ``companion plan
--done``) runs in the real interpreter. The command is killed part-way, then run again in a
fresh ``$OUT`` as the device would after a kill at 10 minutes."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from companion.pipeline import cli
from companion.pipeline import plan as gpu_plan
from companion.pipeline.paths import repo_root

FAKE_PYTHON = textwrap.dedent('''\
    #!{real}
    import os, shutil, sys, time
    from pathlib import Path

    REAL = {real!r}
    args = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(f"{{os.getpid()}} {{' '.join(args)}}\\n")
    if args[:2] == ["-m", "pip"]:
        sys.exit(0)
    if args[:3] != ["-m", "companion", "run"]:
        os.execv(REAL, [REAL, *args])
    source = Path(args[3])
    nid = f"{{source.parent.name}}/{{source.stem}}"
    assert args[4:7] == ["--profile", "gpu", "--timeout"], args
    if os.environ.get("FAKE_HANG") == nid:
        time.sleep(600)
    from companion.pipeline import claims, ledger
    results = Path(os.environ["COMPANION_RESULTS"])
    paper, topic = nid.split("/")
    out = results / "gpu" / paper / f"{{topic}}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(source, out)
    figure = results / "gpu" / paper / "figures" / topic / "curve.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_bytes(b"png")
    record = {{"notebook": nid, "paper": paper, "profile": "gpu", "state": "finished", "wall_seconds": 30.0,
              "environment": {{"device": "cuda", "device_name": "stand-in"}},
              "provenance": ledger.provenance(nid, [c.id for c in claims.claims_of(nid)]),
              "claims": [], "figures": [f"gpu/{{paper}}/figures/{{topic}}/curve.png"]}}
    ledger._write_json(ledger.ledger_path(results, "gpu", nid), record)
    print(f"{{nid}} [gpu] ok in 0.1 s -> {{out}}", flush=True)
''')


@pytest.fixture
def device(tmp_path, monkeypatch, capsys):
    """(the printed command, the carry list, a function running it in a device-like tree)."""
    monkeypatch.setenv("COMPANION_RESULTS", str(tmp_path / "no-results"))
    assert cli.main(["plan", "--next"]) == 0
    lines = capsys.readouterr().out.splitlines()
    command = next(line for line in lines if not line.startswith("#"))
    carry = json.loads(next(line for line in lines if line.startswith("# carry: "))[9:].split("  (")[0])

    tree = tmp_path / "tree"  # the copy of the working tree the device runs the command in
    tree.mkdir()
    (tree / "notebooks").symlink_to(repo_root() / "notebooks")
    for path in carry:  # stand-ins of the carried wheels and data files
        target = tree / path / "papermill-0-py3-none-any.whl" if path == ".whl" else tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON.format(real=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / "python3.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPANION_")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", FAKE_LOG=str(log))
    runs = []

    def start(name, **extra):
        out = tmp_path / name  # $OUT starts empty on every call, as on the device
        out.mkdir()
        stdout = (tmp_path / f"{name}.stdout").open("w")
        proc = subprocess.Popen(["bash", "-c", command], cwd=tree, env={**env, "OUT": str(out), **extra},
                                stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
        runs.append(proc)
        return proc, out, tmp_path / f"{name}.stdout"

    yield command, carry, start, log, tree
    for proc in runs:  # nothing started here outlives the test
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for line in log.read_text().splitlines() if log.exists() else []:
        pid = int(line.split()[0])
        try:
            os.kill(pid, signal.SIGKILL)  # the hanging stand-in sits in timeout's process group
        except ProcessLookupError:
            pass


def _ran(log: Path, since: int = 0) -> list[str]:
    lines = log.read_text().splitlines()[since:] if log.exists() else []
    return [line.split()[4].removeprefix("notebooks/").removesuffix(".ipynb")
            for line in lines if line.split()[1:4] == ["-m", "companion", "run"]]


def _archived(out: Path) -> set[str]:
    archive = out / gpu_plan.ARCHIVE
    if not archive.exists():
        return set()
    with tarfile.open(archive) as tar:
        return set(tar.getnames())


def _members(notebook: str) -> set[str]:
    paper, topic = notebook.split("/")
    return {f"results/ledger/gpu/{paper}__{topic}.json", f"results/gpu/{notebook}.ipynb",
            f"results/gpu/{paper}/figures/{topic}/curve.png"}


def test_the_printed_command_survives_a_kill_and_resumes(device, tmp_path, monkeypatch, capsys):
    command, carry, start, log, tree = device
    slice_ = [n.id for n in gpu_plan.next_slice()]
    assert len(slice_) >= 3
    first, hang = slice_[:2], slice_[2]

    proc, out, stdout = start("out1", FAKE_HANG=hang)
    deadline = time.monotonic() + 240
    while hang not in _ran(log) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert hang in _ran(log), stdout.read_text()
    os.killpg(proc.pid, signal.SIGKILL)  # the device's kill at 10 minutes, part-way
    proc.wait()
    pip = next(line for line in log.read_text().splitlines() if " -m pip " in line)
    assert "install -q --no-index --no-deps" in pip and "--target" in pip and ".whl/papermill-0" in pip
    names = _archived(out)
    for nb in first:
        assert _members(nb) <= names, (nb, names)
    assert not any(hang.split("/")[1] in name for name in names)

    before = len(log.read_text().splitlines())
    proc, out, stdout = start("out2")
    assert proc.wait(timeout=300) == 0, stdout.read_text()
    text = stdout.read_text()
    for nb in first:
        assert f"skip {nb}: done" in text
    assert _ran(log, before) == slice_[2:]  # finished notebooks were not run again
    names = _archived(out)
    for nb in slice_:
        assert _members(nb) <= names
    assert text.strip().endswith("in " + str(out / gpu_plan.ARCHIVE) + ": " + " ".join(slice_))

    # back here: unpack, and the next plan no longer holds them
    here = tmp_path / "here"
    monkeypatch.setenv("COMPANION_RESULTS", str(here))
    assert cli.main(["plan", "--unpack", str(out / gpu_plan.ARCHIVE)]) == 0
    assert "finished on cuda (stand-in)" in capsys.readouterr().out
    assert all(gpu_plan.is_done(nb) for nb in slice_)
    assert not set(slice_) & {n.id for n in gpu_plan.next_slice()}
    assert (here / "REPORT.md").is_file()


def test_the_command_starts_nothing_that_no_longer_fits(device):
    command, carry, start, log, tree = device
    proc, out, stdout = start("late", SECONDS="560")  # bash's clock: 10 s before the deadline
    assert proc.wait(timeout=120) == 0, stdout.read_text()
    assert _ran(log) == []
    assert stdout.read_text().count("s left") == len(gpu_plan.next_slice())
    assert not (out / gpu_plan.ARCHIVE).exists()


def test_the_command_checks_the_data_before_starting_anything(device):
    command, carry, start, log, tree = device
    (tree / ".carry" / "cifar10_jpeg.npz").unlink()
    proc, out, stdout = start("nodata")
    assert proc.wait(timeout=120) == 4
    assert "missing data in" in stdout.read_text() and "cifar10" in stdout.read_text()
    assert _ran(log) == []
