"""A toy recipe for the tests of :mod:`companion.runs` (not collected by pytest).

Ray workers import this module by name: the tests' cluster (tests/runs_cluster.py) has a copy
of it on its ``PYTHONPATH``. The drivers are in tests/runs_driver.py.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class Toy:
    """A seeded least-squares fit by gradient descent, with knobs for the fault tests."""

    seed: int
    steps: int = 40
    sleep: float = 0.0  # seconds to wait before fitting (makes runs long enough to kill)
    fail: bool = False  # raise instead of returning
    hold: str | None = None  # folder: the first attempt writes <seed>.pid there and waits to be killed
    log: str | None = None  # file: every execution appends "<seed> <pid>"


def run(config: Toy) -> dict:
    if config.log:
        with open(config.log, "a") as f:
            f.write(f"{config.seed} {os.getpid()}\n")
    if config.hold:
        marker = Path(config.hold) / f"{config.seed}.pid"
        if not marker.exists():
            tmp = marker.with_suffix(".tmp")
            tmp.write_text(str(os.getpid()))
            os.replace(tmp, marker)
            time.sleep(120)  # killed here by the test
    if config.fail:
        raise ValueError(f"seed {config.seed} was told to fail")
    time.sleep(config.sleep)
    g = torch.Generator().manual_seed(config.seed)
    x = torch.randn(64, 8, generator=g)
    y = x @ torch.randn(8, 1, generator=g) + 0.1 * torch.randn(64, 1, generator=g)
    w = torch.zeros(8, 1, requires_grad=True)
    for _ in range(config.steps):
        loss = ((x @ w - y) ** 2).mean()
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= 0.1 * grad
    with torch.no_grad():
        final = float(((x @ w - y) ** 2).mean())
    return {"seed": config.seed, "loss": final, "w": w.detach().flatten().tolist()}
