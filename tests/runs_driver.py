"""Drivers for the tests of :mod:`companion.runs` on a Ray cluster (not collected by pytest).

``python -m runs_driver <scenario> ...`` runs inside the tests' cluster namespace
(tests/runs_cluster.py) and prints one line ``RESULT <json>`` at the end. The recipe it maps
is :mod:`runs_recipes` (imported by name, as the workers import it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

Toy = run = None  # runs_recipes' (it imports torch: not needed by the security checks)


def _timeless(value):
    """``value`` without its wall-clock ``seconds`` entries (the rest must match exactly)."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def _emit(payload: dict) -> None:
    print("RESULT " + json.dumps(payload), flush=True)


def _configs(args: argparse.Namespace, extra: dict | None = None) -> list[Toy]:
    return [Toy(seed=s, sleep=args.sleep, log=args.log, **(extra or {}).get(s, {})) for s in range(args.n)]


def _map(configs, args, executor=None):
    from companion import runs

    cache = args.cache if args.cache else False
    return runs.map(run, configs, executor=executor or args.executor, cache=cache)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["grid", "basics", "kill-worker", "security", "bench"])
    parser.add_argument("--executor", default="ray")
    parser.add_argument("--cache", default=None)
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--log", default=None)
    parser.add_argument("--hold", default=None)
    parser.add_argument("--check", choices=["wrong", "none"], default="none")
    args = parser.parse_args(argv)
    if args.scenario == "security":
        _emit(_security(args.check))
        return 0
    global Toy, run
    import torch
    from runs_recipes import Toy, run

    torch.set_num_threads(1)  # the local executor's key and results match the workers' (1 thread)
    os.environ.setdefault("COMPANION_THREADS", "1")
    from companion import runs

    if args.scenario == "grid":
        results = _map(_configs(args), args)
        _emit({"results": list(results), "cached": results.cached, "computed": results.computed})
    elif args.scenario == "basics":
        _emit({"same": _same(args), "fail": _fail(args)})
    elif args.scenario == "kill-worker":
        hold = Path(args.hold)
        killed: list[int] = []

        def killer() -> None:
            marker = hold / "1.pid"
            deadline = time.monotonic() + 60
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            pid = int(marker.read_text())
            time.sleep(0.2)  # mid-run: the task is sleeping inside the recipe
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        results = _map(_configs(args, {1: {"hold": str(hold)}}), args)
        thread.join(5)
        reference = [run(Toy(seed=s, sleep=args.sleep)) for s in range(args.n)]  # no log, no hold
        _emit({"results": list(results), "reference": list(reference), "killed": killed,
               "computed": results.computed})
    elif args.scenario == "bench":
        _emit(_bench(args.n))
    return 0


def _same(args: argparse.Namespace) -> dict:
    """The same grids with both executors, cache off: a toy grid and a recipe of the package."""
    from companion import runs

    local = runs.map(run, [Toy(seed=s) for s in range(args.n)], executor="local", cache=False)
    remote = runs.map(run, [Toy(seed=s) for s in range(args.n)], executor="ray", cache=False)
    # short digits MLP runs of nc_losses' protocol, two losses, two seeds
    from companion.experiments import nc_protocol

    grid = [nc_protocol.Config(loss=loss, seed=s, epochs=3, train_per_class=20, n_test=200, hidden=32)
            for loss in ("ce", "mse") for s in (0, 1)]
    nc_local = runs.map(nc_protocol.run, grid, executor="local", cache=False)
    nc_ray = runs.map(nc_protocol.run, grid, executor="ray", cache=False)
    return {"local": list(local), "ray": list(remote), "nc_local": _timeless(list(nc_local)),
            "nc_ray": _timeless(list(nc_ray))}


def _fail(args: argparse.Namespace) -> dict:
    """A grid whose run 2 raises, on the cluster with the cache on, mapped twice."""
    from companion import runs

    configs = [Toy(seed=s, fail=s == 2) for s in range(4)]
    outcome = {}
    for attempt in ("first", "second"):
        try:
            runs.map(run, configs, executor="ray", cache=args.cache)
        except runs.RunsFailed as exc:
            outcome[attempt] = {"message": str(exc), "failed": [f.index for f in exc.failures],
                                "results": list(exc.results), "cached": exc.results.cached,
                                "computed": exc.results.computed}
    return outcome


def _bench(n: int) -> dict:
    """Wall seconds of ``n`` runs per executor, cache off, once the cluster's workers are up."""
    from companion import runs

    timings = {}
    start = time.perf_counter()
    runs.connect()
    timings["connect"] = time.perf_counter() - start
    runs.map(run, [Toy(seed=s, steps=0) for s in range(4)], executor="ray", cache=False, quiet=True)
    for steps in (0, 40):
        for executor in ("local", "ray"):
            configs = [Toy(seed=s, steps=steps) for s in range(n)]
            walls = []
            for _ in range(3):  # the median of three
                start = time.perf_counter()
                runs.map(run, configs, executor=executor, cache=False, quiet=True)
                walls.append(time.perf_counter() - start)
            timings[f"{executor}_steps{steps}"] = sorted(walls)[1]
    return timings


def _security(check: str) -> dict:
    """``wrong``: a client with a wrong token (RAY_AUTH_TOKEN, set by the test) asks the GCS;
    ``none``: companion.runs connects without any token. Also: does a dashboard listen?"""
    import socket

    out = {}
    if check == "wrong":
        from ray._raylet import GcsClient

        try:
            GcsClient(address="127.0.0.1:6391").internal_kv_keys(b"", None, timeout=10)
            out["refused"] = ""
        except Exception as exc:  # noqa: BLE001
            out["refused"] = f"{type(exc).__name__}: {exc}"[:300]
    else:
        for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
            os.environ.pop(name, None)  # companion.runs turns token mode on by itself
        from companion import runs

        try:
            runs.connect("127.0.0.1:6391")
            out["refused"] = ""
        except Exception as exc:  # noqa: BLE001
            out["refused"] = f"{type(exc).__name__}: {exc}"[:300]
    with socket.socket() as s:
        s.settimeout(2)
        out["dashboard"] = "listening" if s.connect_ex(("127.0.0.1", 8265)) == 0 else "closed"
    return out


if __name__ == "__main__":
    sys.exit(main())
