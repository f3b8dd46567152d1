"""Ray executor against local for small runs, and resume after a killed driver (issue 16 item 8).

    sudo .venv/bin/python benchmarks/runs_overhead.py [--n 32] [--json out.json]

Starts the tests' local cluster (tests/runs_cluster.py: 2 CPUs, its own network namespace,
loopback only, token authentication on, no dashboard), then inside it:

1. per-run overhead: ``n`` toy runs (tests/runs_recipes.py: a seeded least-squares fit; 0 or
   40 gradient steps) with each executor, cache off, after the workers are up (a warm-up map),
   the median of three maps; the ray executor's overhead per run is its wall time per run
   times the 2 worker CPUs, less the local executor's (which computes the same runs in turn);
2. resume: a driver maps ``n`` runs of 0.25 s each on the cluster with the cache on, is killed
   (SIGKILL) once half of them are stored, and is rerun: runs reused / recomputed, wall seconds.

Not a test (timings depend on the machine and its load); the README's "Scaling out" quotes it.
Needs root (for the namespace) and the ``cluster`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import runs_cluster  # noqa: E402


def stored(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("output.pkl"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    why = runs_cluster.available()
    if why:
        print(f"cannot start the cluster: {why}", file=sys.stderr)
        return 2
    out: dict = {"n": args.n, "cpus": os.cpu_count(), "load_before": os.getloadavg()[0]}
    start = time.perf_counter()
    with runs_cluster.Cluster() as cluster:
        out["cluster_start_s"] = time.perf_counter() - start
        timings, _ = cluster.driver("bench", "--n", str(args.n), timeout=600)
        out.update(timings)
        for steps in (0, 40):
            local, ray = timings[f"local_steps{steps}"], timings[f"ray_steps{steps}"]
            out[f"per_run_ms_local_steps{steps}"] = 1000 * local / args.n
            out[f"per_run_ms_ray_steps{steps}"] = 1000 * ray / args.n
            out[f"overhead_ms_per_run_steps{steps}"] = 1000 * (2 * ray - local) / args.n
        cache = cluster.scratch / "bench-resume"
        grid = ("grid", "--n", str(args.n), "--sleep", "0.25", "--cache", str(cache))
        first = cluster.spawn(*grid)
        t0 = time.perf_counter()
        while stored(cache) < args.n // 2 and first.poll() is None:
            time.sleep(0.02)
        first.kill()
        first.communicate()
        out["killed_after_s"] = time.perf_counter() - t0
        out["stored_at_kill"] = stored(cache)
        t0 = time.perf_counter()
        rerun, _ = cluster.driver(*grid, timeout=600)
        out["rerun_s"] = time.perf_counter() - t0
        out["rerun_reused"], out["rerun_recomputed"] = rerun["cached"], rerun["computed"]
    out["load_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    print(f"\n{args.n} small runs, cache off, workers up ({out['cpus']} cores, load {out['load_before']:.1f}):")
    for steps in (0, 40):
        print(f"  {steps:>2} steps: local {out[f'per_run_ms_local_steps{steps}']:.1f} ms/run, "
              f"ray {out[f'per_run_ms_ray_steps{steps}']:.1f} ms/run (2 worker CPUs): "
              f"overhead {out[f'overhead_ms_per_run_steps{steps}']:.1f} ms per run and worker")
    print(f"resume: killed with {out['stored_at_kill']}/{args.n} stored; rerun reused "
          f"{out['rerun_reused']}, recomputed {out['rerun_recomputed']} in {out['rerun_s']:.1f} s "
          f"(incl. driver start)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
