"""Grids of independent runs: ``companion.runs.map(recipe, configs)``.

A run is a module-level function (importable by a worker process) applied to one frozen
config; ``map`` applies it to a list of configs and returns the results in order. The
notebooks tell the story; the grid is data.

This first version runs each config in this process, one after another. The executor and the
content-keyed cache of finished runs (resume after a kill; ``COMPANION_RUNS``) plug in behind
the same call, chosen by ``executor=`` or ``$COMPANION_EXECUTOR``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

C = TypeVar("C")
R = TypeVar("R")


def map(fn: Callable[[C], R], configs: Sequence[C], *, executor: str | None = None,
        **options: Any) -> list[R]:  # noqa: A001 - the natural name, used as companion.runs.map
    """``[fn(c) for c in configs]``, in order."""
    if getattr(fn, "__qualname__", "").count("<locals>") or getattr(fn, "__name__", "") == "<lambda>":
        raise ValueError(f"{fn!r} must be a module-level function (workers import it by name)")
    return [fn(config) for config in configs]
