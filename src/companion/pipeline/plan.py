"""The gpu campaign: the CUDA notebooks' gpu profiles, run a slice at a time on a lent device.

A lent H100 or H200 runs one command for at most 10 minutes, a session gets 15 device-minutes
(1-2 of them to start the machine) and sessions with a device come rarely, so the gpu column
fills over several sessions. ``companion plan`` keeps the campaign resumable:

* **what is left**: every notebook whose gpu profile needs CUDA (``cuda`` in
  ``registry/notebooks.yaml``) and has no *fresh* gpu ledger measured on CUDA (the ledger's
  ``environment.device`` is ``"cuda"``, its state ``finished``, and neither the notebook's
  sources nor its claims' statements changed since: the digests of ``provenance``);
* **in which order**: ``priority`` first (the speed benchmark, then a notebook that runs side
  by side on CUDA streams, then the launch-bound small ResNets and a deterministic ResNet-18:
  what calibrates the estimates of the others), then the shortest estimate;
* **how long**: the registry's estimate times the ratio measured/estimated over every
  notebook already measured on CUDA (1 before the first);
* ``companion plan --next`` fills a budget (default 9 minutes of estimated work) with the
  first notebooks of that order and prints **one self-contained shell command** for the
  device (:func:`device_command`) and the paths to carry: it installs the carried wheels
  offline, exports ``PYTHONPATH``, an absolute ``COMPANION_DATA`` and ``COMPANION_RESULTS``,
  checks that every dataset the slice reads is present before starting anything, runs each
  notebook with ``python3 -m companion run`` under a per-notebook timeout (and a per-cell
  timeout below it, so papermill stops the kernel cleanly), skips what is done, starts nothing
  that no longer fits before the command's deadline, and re-packs the finished results into
  ``$OUT/gpu-results.tgz`` after every notebook, so a kill keeps what finished;
* ``companion plan --unpack <files_at>/gpu-results.tgz`` (here) unpacks that archive into the
  checkout, prints measured against estimated minutes, and regenerates the report.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from . import claims as claim_registry
from .ledger import stale_reasons
from .paths import data_dir, repo_root, results_dir

PROFILE = "gpu"
#: kernel start, imports and dataset decoding that a ledger's wall time does not include
STARTUP_MINUTES = 0.25
#: minutes of estimated work in one device command by default (the device kills it at 10)
BUDGET_MINUTES = 9.0
#: the device command starts no notebook that would end after this many seconds, and ends
#: every notebook by then (the device kills a command at 600 s; the rest is for the archive)
DEADLINE_SECONDS = 570
#: a notebook may take this many times its estimate (plus a minute) before it is stopped
TIMEOUT_FACTOR = 2
#: the per-cell timeout stays this far below the notebook's, so papermill stops the kernel
CELL_MARGIN_SECONDS = 20
ARCHIVE = "gpu-results.tgz"
WHEELS = ".whl"
CARRY = ".carry"
#: what may travel to the device: the tree, the wheels and the data together
TRAVEL_LIMIT_BYTES = 64 * 2**20
MAX_COMMAND_CHARS = 2000
DEFAULT_PRIORITY = 100


@dataclass(frozen=True)
class Notebook:
    """A notebook of the campaign and where it stands."""

    id: str                  # '<paper>/<NN_topic>'
    estimate: float          # registry minutes (gpu profile, kernel start included)
    priority: int
    data: tuple[str, ...]    # image datasets its gpu profile reads
    state: str               # "measured", "stale: <why>" or "to run"
    measured: float | None   # minutes of its last CUDA ledger (fresh or stale)
    minutes: float           # measured if fresh, else the estimate times the scale

    @property
    def done(self) -> bool:
        return self.state == "measured"

    @property
    def seconds(self) -> int:
        return math.ceil(self.minutes * 60)


# -- the registry and the ledgers ------------------------------------------------------------


@cache
def _registry_entries() -> dict[str, dict[str, Any]]:
    return yaml.safe_load((claim_registry.REGISTRY / "notebooks.yaml").read_text()) or {}


def cuda_notebooks(profile: str = PROFILE) -> dict[str, dict[str, Any]]:
    """The registry's entries of the notebooks whose ``profile`` needs CUDA."""
    return {nb: e for nb, e in _registry_entries().items() if profile in (e.get("cuda") or ())}


def ledgers(profile: str = PROFILE, root: Path | None = None) -> dict[str, dict[str, Any]]:
    """The ledger records under ``<results>/ledger/<profile>/``, by notebook id."""
    folder = (root or results_dir()) / "ledger" / profile
    records = {}
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and "notebook" in record:
            records[record["notebook"]] = record
    return records


def on_cuda(record: dict[str, Any]) -> bool:
    """A finished run measured on a CUDA device."""
    return (record.get("state", "finished") == "finished"
            and (record.get("environment") or {}).get("device") == "cuda")


def measured_minutes(record: dict[str, Any]) -> float:
    """Minutes of a run: the ledger's wall time plus the kernel start it does not include."""
    return float(record["wall_seconds"]) / 60 + STARTUP_MINUTES


def scale(root: Path | None = None, profile: str = PROFILE) -> tuple[float, int]:
    """(measured / estimated minutes over the notebooks measured on CUDA, how many): the factor
    applied to the estimates of the others; (1.0, 0) before the first."""
    entries = cuda_notebooks(profile)
    pairs = [(measured_minutes(r), float(entries[nb]["gpu_minutes"]))
             for nb, r in ledgers(profile, root).items()
             if nb in entries and on_cuda(r) and "wall_seconds" in r]
    if not pairs:
        return 1.0, 0
    return sum(m for m, _ in pairs) / sum(e for _, e in pairs), len(pairs)


def campaign(root: Path | None = None, profile: str = PROFILE) -> list[Notebook]:
    """Every CUDA notebook of ``profile``, in the order the campaign runs them."""
    ratio, _ = scale(root, profile)
    records = ledgers(profile, root)
    out = []
    for nb, entry in cuda_notebooks(profile).items():
        estimate = float(entry["gpu_minutes"])
        record = records.get(nb)
        measured, state = None, "to run"
        if record is not None and on_cuda(record):
            measured = measured_minutes(record) if "wall_seconds" in record else None
            reasons = stale_reasons(record)
            state = f"stale: {'; '.join(reasons)}" if reasons else "measured"
        minutes = measured if state == "measured" and measured is not None else estimate * ratio
        out.append(Notebook(nb, estimate, int(entry.get("priority", DEFAULT_PRIORITY)),
                            tuple(entry.get("data") or ()), state, measured, round(minutes, 2)))
    return sorted(out, key=lambda n: (n.priority, n.estimate, n.id))


def is_done(notebook: str, root: Path | None = None, profile: str = PROFILE) -> bool:
    """Whether ``notebook`` has a fresh ledger of ``profile`` measured on CUDA."""
    record = ledgers(profile, root).get(notebook)
    return record is not None and on_cuda(record) and not stale_reasons(record)


def next_slice(budget: float = BUDGET_MINUTES, root: Path | None = None,
               profile: str = PROFILE) -> list[Notebook]:
    """The notebooks of the next device command: the campaign's order, skipping what is done
    and what no longer fits ``budget`` minutes (a later, shorter one may still fit)."""
    left = [n for n in campaign(root, profile) if not n.done]
    chosen, total = [], 0.0
    for item in left:
        if total + item.minutes <= budget:
            chosen.append(item)
            total += item.minutes
    if left and not chosen:
        shortest = min(left, key=lambda n: n.minutes)
        raise ValueError(f"nothing fits {budget:g} minutes: the shortest notebook left, {shortest.id}, "
                         f"needs {shortest.minutes:.1f}; trim its gpu profile or raise --budget")
    return chosen


# -- the device command ----------------------------------------------------------------------


def offline_files(dataset: str) -> tuple[str, ...]:
    """The offline copy's files of an image dataset (what travels in ``.carry/``)."""
    from ..data import images

    for source in images.SOURCES[dataset]:
        if not source.official:
            return tuple(dict.fromkeys(f for files in source.files.values() for f in files))
    raise ValueError(f"{dataset} has no offline copy to carry; put its official files in {CARRY}/")


def datasets(slice_: Iterable[Notebook]) -> list[str]:
    return list(dict.fromkeys(d for n in slice_ for d in n.data))


def carry_paths(slice_: list[Notebook]) -> list[str]:
    """Ignored paths the device command needs: the wheels and each dataset's offline copy."""
    return [WHEELS, *(f"{CARRY}/{f}" for d in datasets(slice_) for f in offline_files(d))]


_DATA_CHECK = ("import sys;from pathlib import Path;from companion.data.images import find_source as f;"
               "d=Path(sys.argv[1]);m=[n for n in sys.argv[2:] if not all(f(n,s,d) for s in('train','test'))];"
               "m and sys.exit('missing data in '+str(d)+': '+' '.join(m))")


def device_command(slice_: list[Notebook], profile: str = PROFILE,
                   deadline: int = DEADLINE_SECONDS) -> str:
    """One bash line for the device, run in the root of the tree copy (see the module doc).

    Exit status: 3 the wheels did not install, 4 a dataset is missing (nothing started),
    otherwise 0; each notebook prints a ``skip``/``FAILED`` line or ``companion run``'s line,
    and the last line lists what is in the archive."""
    if not slice_:
        raise ValueError("no notebook to run")
    jobs = " ".join(f"{n.id}:{n.seconds}" for n in slice_)
    need = " ".join(datasets(slice_))
    check = f"python3 -c \"{_DATA_CHECK}\" $COMPANION_DATA {need}||exit 4;" if need else ""
    command = (
        "set -u;S=$PWD;A=${OUT:?}/" + ARCHIVE + ";W=$S/.site;"
        f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target $W {WHEELS}/*.whl||exit 3;"
        f"export PYTHONPATH=$W:$S/src COMPANION_DATA=$S/{CARRY} COMPANION_RESULTS=$S/results PYTHONUNBUFFERED=1;"
        + check +
        # p: re-pack every finished notebook (its executed copy, figures and ledger) into $A
        f"p(){{ f=;for d in $D;do for q in results/{profile}/$d.ipynb results/{profile}/${{d%/*}}/figures/${{d#*/}} "
        f"results/ledger/{profile}/${{d/\\//__}}.json;do [ -e $q ]&&f=\"$f $q\";done;done;"
        "[ -n \"$f\" ]&&tar czf $A.part $f&&mv $A.part $A; };"
        f"D=;for j in {jobs};do n=${{j%:*}};e=${{j#*:}};"
        "if python3 -m companion.pipeline.plan --done $n;then echo \"skip $n: done\";D=\"$D $n\";p;continue;fi;"
        f"l=$(({deadline}-SECONDS));if [ $e -gt $l ];then echo \"skip $n: needs ${{e}}s, ${{l}}s left\";continue;fi;"
        f"t=$(({TIMEOUT_FACTOR}*e+60));[ $t -gt $l ]&&t=$l;"
        f"timeout -k 10 $t python3 -m companion run notebooks/$n.ipynb --profile {profile} "
        f"--timeout $((t>{2 * CELL_MARGIN_SECONDS}?t-{CELL_MARGIN_SECONDS}:t))&&D=\"$D $n\"||echo \"FAILED $n\";p;done;"
        "echo \"in $A:$D\""
    )
    if len(command) >= MAX_COMMAND_CHARS:
        raise ValueError(f"the device command has {len(command)} characters (limit {MAX_COMMAND_CHARS}): "
                         "plan fewer notebooks (--budget)")
    return command


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def tree_bytes(root: Path | None = None) -> int | None:
    """Bytes of the tree that travels: tracked files and untracked files git does not ignore."""
    root = root or repo_root()
    try:
        listing = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                                 capture_output=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sum(_bytes(root / name) for name in listing.decode().split("\0") if name)


def describe_next(budget: float = BUDGET_MINUTES, root: Path | None = None) -> str:
    """What ``companion plan --next`` prints: comment lines, then the command as the one line
    that does not start with ``#``."""
    slice_ = next_slice(budget, root)
    if not slice_:
        return "# every CUDA notebook has a fresh gpu ledger measured on CUDA: nothing to run"
    ratio, count = scale(root)
    left = [n for n in campaign(root) if not n.done]
    total = sum(n.minutes for n in slice_)
    lines = [
        f"# next device command: {len(slice_)} of the {len(left)} notebook(s) left, {total:.1f} of "
        f"{budget:g} estimated minutes"
        + (f" (estimates x {ratio:.2f}, the ratio measured/estimated over {count} notebook(s) run on CUDA)"
           if count else " (registry estimates: nothing measured on CUDA yet)"),
    ]
    for n in slice_:
        lines.append(f"#   {n.id:<42} {n.minutes:4.1f} min ({n.state}), at most "
                     f"{min(TIMEOUT_FACTOR * n.seconds + 60, DEADLINE_SECONDS) / 60:.1f} min")
    base = repo_root()
    carry = carry_paths(slice_)
    sizes = {p: _bytes(base / p) for p in carry}
    tree = tree_bytes(base)
    missing = [p for p in carry if not sizes[p]]
    lines.append("# carry: " + json.dumps(carry) + "  ("
                 + ", ".join(f"{p} {sizes[p] / 1e6:.1f} MB" for p in carry)
                 + (f"; with the tree {((tree or 0) + sum(sizes.values())) / 2**20:.1f} of 64 MiB)"
                    if tree is not None else ")"))
    if tree is not None and tree + sum(sizes.values()) > TRAVEL_LIMIT_BYTES:
        lines.append("# WARNING: more than 64 MiB would travel: the device refuses the call")
    if WHEELS in missing:
        lines.append("# first, here: bash ../shared/tools/device-wheels.sh   (fills .whl/)")
    for p in missing:
        if p.startswith(CARRY + "/"):
            lines.append(f"# first, here: mkdir -p {CARRY} && cp {data_dir() / Path(p).name} {CARRY}/")
    lines.append("# run it with timeout_s 600; then, here: "
                 f"companion plan --unpack <files_at>/{ARCHIVE}   (unpacks, regenerates the report)")
    lines.append(device_command(slice_))
    return "\n".join(lines)


def describe(root: Path | None = None, budget: float = BUDGET_MINUTES) -> str:
    """What ``companion plan`` prints: the campaign's notebooks, their state and minutes."""
    items = campaign(root)
    ratio, count = scale(root)
    left = [n for n in items if not n.done]
    lines = [f"gpu campaign: {len(items)} notebook(s) need CUDA at the gpu profile; "
             f"{len(items) - len(left)} measured on CUDA, {len(left)} left"]
    lines.append(f"estimates x {ratio:.2f} (measured/estimated over {count} notebook(s) run on CUDA)"
                 if count else "estimates from registry/notebooks.yaml (nothing measured on CUDA yet)")
    width = max(len(n.id) for n in items) if items else 10
    for order, n in enumerate(items, 1):
        minutes = f"{n.minutes:4.1f} min" + (f" (estimate {n.estimate:g})" if n.done else "")
        lines.append(f"{order:3d}  {n.id:<{width}}  {minutes}  {n.state}")
    total = sum(n.minutes for n in left)
    commands = _commands_needed(left, budget)
    lines.append(f"left: {total:.1f} minutes, about {commands} device command(s) of at most {budget:g} "
                 "minutes (one per 15-minute session)" if left else "left: nothing")
    if left:
        lines.append("next: companion plan --next")
    return "\n".join(lines)


def _commands_needed(left: list[Notebook], budget: float) -> int:
    count, remaining = 0, list(left)
    while remaining:
        chosen, total = [], 0.0
        for item in remaining:
            if total + item.minutes <= budget:
                chosen.append(item)
                total += item.minutes
        if not chosen:
            return count + len(remaining)
        remaining = [n for n in remaining if n not in chosen]
        count += 1
    return count


def summary_line(notebook_ids: Iterable[str], profile: str = PROFILE) -> str:
    """``companion reproduce --profile gpu``'s line on the CUDA notebooks among ``notebook_ids``."""
    wanted = set(notebook_ids)
    items = [n for n in campaign(profile=profile) if n.id in wanted]
    if not items:
        return "planned: none of these notebooks needs CUDA at the gpu profile"
    left = [n for n in items if not n.done]
    return (f"planned: {len(items)} notebook(s) need CUDA at the gpu profile, {len(items) - len(left)} "
            f"measured there, {len(left)} left ({sum(n.minutes for n in left):.1f} H100 minutes); on a "
            "device, `companion plan --next` prints the next command (at most "
            f"{BUDGET_MINUTES:g} minutes) and `companion plan --unpack` brings its results back")


# -- back here -------------------------------------------------------------------------------


def _allowed(name: str, profile: str) -> bool:
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or parts[0] != "results":
        return False
    return (parts[1:2] == (profile,) and len(parts) >= 4) or (
        parts[1:3] == ("ledger", profile) and len(parts) == 4 and name.endswith(".json"))


def unpack(archive: str | Path, profile: str = PROFILE) -> list[dict[str, Any]]:
    """Extract a device command's archive into ``<results>`` (only ``results/<profile>/...`` and
    ``results/ledger/<profile>/*.json``; anything else is refused) and return the ledgers it
    brought."""
    target = results_dir()
    brought = []
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        bad = [m.name for m in members if not _allowed(m.name, profile) or not (m.isfile() or m.isdir())]
        if bad:
            raise ValueError(f"{archive}: unexpected member(s) {', '.join(bad[:5])}: not unpacked")
        for member in members:
            if not member.isfile():
                continue
            path = target.joinpath(*PurePosixPath(member.name).parts[1:])
            path.parent.mkdir(parents=True, exist_ok=True)
            data = tar.extractfile(member).read()
            partial = path.with_name(f".{path.name}.{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(path)
            if PurePosixPath(member.name).parts[1] == "ledger":
                brought.append(json.loads(data))
    return brought


def describe_unpacked(records: list[dict[str, Any]], profile: str = PROFILE) -> str:
    """Measured against estimated minutes of each notebook an archive brought."""
    entries = cuda_notebooks(profile)
    lines = []
    for r in records:
        env = r.get("environment") or {}
        measured = measured_minutes(r) if "wall_seconds" in r else float("nan")
        estimate = entries.get(r["notebook"], {}).get("gpu_minutes")
        versus = f" against {estimate:g} estimated ({measured / float(estimate):.2f}x)" if estimate else ""
        lines.append(f"{r['notebook']}: {r.get('state', 'finished')} on {env.get('device')} "
                     f"({env.get('device_name')}), {measured:.2f} min{versus}")
    return "\n".join(lines) or "the archive holds no ledger"


def main(*, next_: bool = False, budget: float = BUDGET_MINUTES, unpack_archive: str | None = None,
         done: str | None = None) -> int:
    """``companion plan``: the campaign (default), ``--next``, ``--unpack ARCHIVE``, ``--done NB``."""
    import sys

    if done is not None:
        return 0 if is_done(done) else 1
    if unpack_archive is not None:
        from . import report

        try:
            records = unpack(unpack_archive)
        except (OSError, ValueError, tarfile.TarError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(describe_unpacked(records))
        print(f"report: {report.write()}")
        print("next: commit results/gpu, results/ledger/gpu and results/REPORT.md; companion plan --next")
        return 0
    try:
        print(describe_next(budget) if next_ else describe(budget=budget))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # the device command's skip test, without the CLI's imports (nbformat)
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m companion.pipeline.plan",
                                     description="as `companion plan`")
    parser.add_argument("--done", metavar="NOTEBOOK")
    parser.add_argument("--next", action="store_true")
    parser.add_argument("--budget", type=float, default=BUDGET_MINUTES)
    args = parser.parse_args()
    sys.exit(main(next_=args.next, budget=args.budget, done=args.done))
