"""The ``companion`` command line: run, reproduce, report, normalize, check, env, data."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from . import claims as registry
from . import notebooks
from .scaffold import duration


def _parameters(pairs: list[list[str]] | None) -> dict:
    return {name: notebooks.parse_value(value) for name, value in (pairs or [])}


def _use_executor(args: argparse.Namespace) -> None:
    """--executor/--address reach companion.runs.map in the kernels through the environment."""
    import os

    from .. import runs

    if args.executor:
        os.environ[runs.EXECUTOR_ENV] = args.executor
    if args.address:
        os.environ[runs.ADDRESS_ENV] = args.address


def cmd_run(args: argparse.Namespace) -> int:
    _use_executor(args)
    if args.out and len(args.notebook) > 1:
        raise SystemExit("--out takes one notebook at a time")
    try:  # every notebook checked before any kernel starts
        params = _parameters(args.p)
        for nb in args.notebook:
            notebooks.preflight(nb, args.profile, params)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for nb in args.notebook:
        try:
            result = notebooks.run(nb, args.profile, params, args.out, timeout=_cell_timeout(args),
                                   log_output=args.log_output)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        _print_result(result)
        status |= 0 if result.ok else 1
    return status


def _print_result(result: notebooks.RunResult, prefix: str = "") -> None:
    name = notebooks.notebook_id(result.notebook)
    state = "ok" if result.ok else "FAILED"
    print(f"{prefix}{name} [{result.profile}] {state} in {result.seconds:.1f} s -> {result.output}",
          flush=True)
    if not result.ok:
        print(f"{prefix}  {result.error}", flush=True)
        if result.failed_output:
            print(f"{prefix}  partial output: {result.failed_output}", flush=True)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from . import report

    _use_executor(args)
    if args.notebook_tasks and args.executor != "ray":
        print("error: --notebook-tasks needs --executor ray", file=sys.stderr)
        return 2

    root = Path(args.notebooks) if args.notebooks else None
    try:
        paths = [p for paper in (args.paper or [None]) for p in notebooks.discover(paper, root)]
    except ValueError as exc:  # an unknown paper: name the known ones
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print("no notebooks found", file=sys.stderr)
        return 2
    try:  # every notebook checked before the first one runs
        params = _parameters(args.p)
        for path in paths:
            notebooks.preflight(path, args.profile, params, check_cuda=False)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks.is_custom(params):  # a profile that needs CUDA is skipped on a CPU
        needing = [p for p in paths if notebooks.needs_cuda(p, args.profile)]
        if needing and not notebooks.cuda_available():
            for path in needing:
                print(f"skip {notebooks.notebook_id(path)}: its {args.profile} profile needs CUDA "
                      f"and this machine has none", flush=True)
            paths = [p for p in paths if p not in needing]
    print(f"reproduce: {len(paths)} notebook(s) at profile {args.profile!r}", flush=True)
    if args.profile == "paper" and not notebooks.is_custom(params) and not notebooks.cuda_available():
        for line in paper_cpu_estimates(notebooks.notebook_id(p) for p in paths):
            print(line, flush=True)
    if args.profile == "gpu":  # the CUDA notebooks run on a device, a slice at a time
        from . import plan as gpu_plan

        selected = (p for paper in (args.paper or [None]) for p in notebooks.discover(paper, root))
        print(gpu_plan.summary_line(notebooks.notebook_id(p) for p in selected), flush=True)  # skipped ones too
    start = time.perf_counter()
    failed = []
    if args.notebook_tasks:  # each notebook one Ray task (one GPU each on a GPU cluster)
        from .. import runs

        done = runs.run_notebooks(paths, args.profile, params, root=root, address=args.address,
                                  timeout=_cell_timeout(args), record=True,
                                  progress=lambda r, i: _print_result(r, prefix=f"[{i + 1}/{len(paths)}] "))
        failed = [result for result in done if not result.ok]
    for index, path in enumerate(paths if not args.notebook_tasks else [], 1):
        out = notebooks.default_output(path, args.profile, root, custom=notebooks.is_custom(params))
        result = notebooks.run(path, args.profile, params or None, out, record=True,
                               timeout=_cell_timeout(args))
        _print_result(result, prefix=f"[{index}/{len(paths)}] ")
        if not result.ok:
            failed.append(result)
    print(f"total {time.perf_counter() - start:.1f} s; report: {report.write(notebooks_root=root)}")
    if failed:
        print(f"{len(failed)} notebook(s) failed:", file=sys.stderr)
        for result in failed:
            print(f"  {result.notebook}: {result.error}", file=sys.stderr)
        return 1
    return 0


def paper_cpu_estimates(notebook_ids: Iterable[str], *, long_minutes: float = 15.0) -> list[str]:
    """What a paper-profile run on this CPU is in for: the registry's estimate of each notebook
    that takes longer than ``long_minutes`` on one core, and the total (the UFM and layer-peeled
    runs at the papers' sizes take hours; they are listed before the first one starts)."""
    estimates = {nb: registry.notebook(nb) for nb in notebook_ids}
    known = {nb: info for nb, info in estimates.items() if info.paper_cpu_minutes is not None}
    if not known:
        return []
    lines = [f"  {nb}: about {duration(info.paper_cpu_minutes)} on one CPU core ({info.paper_cpu_basis})"
             for nb, info in known.items() if info.paper_cpu_minutes > long_minutes]
    total = sum(info.paper_cpu_minutes for info in known.values())
    return [f"estimated {duration(total)} on one CPU core for {len(known)} notebook(s)"
            + (f", {len(lines)} of them long:" if lines else "")] + lines


def cmd_report(args: argparse.Namespace) -> int:
    from . import report

    path = report.write(Path(args.out) if args.out else None)
    print(path)
    if args.readme:
        print(report.sync_readme(path.read_text()))
    return 0


def cmd_normalize(args: argparse.Namespace) -> int:
    for nb in args.notebook:
        changed = notebooks.normalize_file(nb)
        print(f"{nb}: {'normalized' if changed else 'already normalized'}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    paths = args.notebook or notebooks.discover()
    bad = 0
    for nb in paths:
        for problem in notebooks.problems(nb):
            print(f"{nb}: {problem}")
            bad += 1
    print(f"{len(paths)} notebook(s) checked, {bad} problem(s)")
    return 1 if bad else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from . import plan as gpu_plan

    return gpu_plan.main(next_=args.next, budget=args.budget, unpack_archive=args.unpack, done=args.done)


#: per-cell timeout (seconds) of `companion run/reproduce` when --timeout is not given: a cell of a
#: gpu profile running this long is hung (the device kills a whole command at 600 s)
DEFAULT_CELL_TIMEOUT = {"gpu": 600.0}


def _cell_timeout(args: argparse.Namespace) -> float | None:
    return args.timeout if args.timeout is not None else DEFAULT_CELL_TIMEOUT.get(args.profile)


def cmd_headers(args: argparse.Namespace) -> int:
    from . import scaffold

    paths = args.notebook or notebooks.discover()
    bad = 0
    for nb in paths:
        if args.check:
            for problem in scaffold.header_problems(nb):
                print(f"{nb}: {problem}")
                bad += 1
        elif scaffold.sync_header(nb):
            print(f"{nb}: header re-rendered from the registry")
    if args.check:
        print(f"{len(paths)} header(s) checked, {bad} problem(s)")
    return 1 if bad else 0


def cmd_new(args: argparse.Namespace) -> int:
    from . import scaffold

    try:
        path = scaffold.new_notebook(args.paper, args.topic, Path(args.root) if args.root else None)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}; storing it at ci ...", flush=True)
    result = notebooks.run(path, "ci", {}, path)
    _print_result(result)
    if result.ok:
        print("next: register its claims (src/companion/registry/), write their rules "
              "(companion.verdicts), the work cells, then `companion headers` and `make store NB=...`")
    return 0 if result.ok else 1


def cmd_env(args: argparse.Namespace) -> int:
    from . import paths
    from .. import repro

    print(repro.describe_environment())
    print(f"{'data':>13}: {paths.data_dir()}")
    print(f"{'results':>13}: {paths.results_dir()}")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from .. import data

    try:
        data.fetch(args.name, data_dir=args.dir, base_url=args.url, log=print)
    except (ValueError, data.DownloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from .. import data

    print(data.check(args.dir, verify=args.verify))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="companion", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def add_params(p: argparse.ArgumentParser) -> None:
        p.add_argument("-p", nargs=2, action="append", metavar=("NAME", "VALUE"),
                       help="set a notebook parameter; VALUE is YAML (3, 1e-3, true, [ce, ls])")
        p.add_argument("--timeout", type=float, default=None,
                       help="per-cell timeout in seconds (default: 600 at the gpu profile, none otherwise)")
        p.add_argument("--executor", choices=("local", "ray"), default=None,
                       help="where the notebooks' grids of runs (companion.runs.map) execute "
                            "(default $COMPANION_EXECUTOR, else local)")
        p.add_argument("--address", default=None,
                       help="Ray cluster address for --executor ray, e.g. 10.0.0.5:6379 "
                            "(default $COMPANION_RAY_ADDRESS; none: a private local cluster)")

    p = sub.add_parser("run", help="execute notebook(s) at a profile with papermill")
    p.add_argument("notebook", nargs="+")
    p.add_argument("--profile", default="ci", help="ci | gpu | paper (default ci)")
    p.add_argument("--out", help="output notebook (default results/<profile>/<paper>/<name>)")
    p.add_argument("--log-output", action="store_true", help="stream cell output while running")
    add_params(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("reproduce", help="run every notebook at a profile, then write the report")
    p.add_argument("--profile", default="ci")
    p.add_argument("--paper", action="append", help="only this paper's notebooks (repeatable)")
    p.add_argument("--notebooks", help="folder of <paper>/NN_*.ipynb notebooks (default notebooks/)")
    p.add_argument("--notebook-tasks", action="store_true",
                   help="with --executor ray: run each notebook as one Ray task (one GPU each)")
    add_params(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("plan", help="the gpu campaign on a device: what is left, the next device command, "
                                    "unpacking its results")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--next", action="store_true",
                      help="print the next device command (one shell line) and the paths to carry")
    what.add_argument("--unpack", metavar="ARCHIVE",
                      help="unpack a device command's gpu-results.tgz here and regenerate the report")
    what.add_argument("--done", metavar="NOTEBOOK",
                      help="exit 0 if NOTEBOOK has a fresh gpu ledger measured on CUDA (the device command's skip test)")
    p.add_argument("--budget", type=float, default=9.0,
                   help="minutes of estimated work in the next command (default 9; the device kills one at 10)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("report", help="write results/REPORT.md from all ledgers")
    p.add_argument("--out")
    p.add_argument("--readme", action="store_true",
                   help="also copy its headline lines and count tables into README.md")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("normalize", help="strip run metadata from notebooks in place")
    p.add_argument("notebook", nargs="+")
    p.set_defaults(func=cmd_normalize)

    p = sub.add_parser("check", help="list problems of stored notebooks (default: all)")
    p.add_argument("notebook", nargs="*")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("headers", help="render notebook headers' claims and gpu blocks from the registry")
    p.add_argument("notebook", nargs="*")
    p.add_argument("--check", action="store_true", help="only report headers that differ")
    p.set_defaults(func=cmd_headers)

    p = sub.add_parser("new", help="scaffold notebooks/<paper>/NN_<topic>.ipynb and store it at ci")
    p.add_argument("paper")
    p.add_argument("topic")
    p.add_argument("--root", help="notebooks folder (default notebooks/)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("env", help="print versions, device, data and results folders")
    p.set_defaults(func=cmd_env)

    p = sub.add_parser("data", help="download datasets, or list what is present")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    q = data_sub.add_parser("fetch", help="download a dataset's official files (SHA-256 checked)")
    q.add_argument("name", help="mnist | cifar10 | cifar100 | svhn")
    q.add_argument("--url", help="base URL of a mirror to use instead of the official ones")
    q.add_argument("--dir", help="data directory (default $COMPANION_DATA or <repo>/data)")
    q.set_defaults(func=cmd_data_fetch)
    q = data_sub.add_parser("check", help="per dataset: files present, source the loader uses")
    q.add_argument("--dir", help="data directory (default $COMPANION_DATA or <repo>/data)")
    q.add_argument("--verify", action="store_true", help="also check official files' SHA-256")
    q.set_defaults(func=cmd_data_check)

    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # the run in progress has kept its partial output and failed ledger
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
