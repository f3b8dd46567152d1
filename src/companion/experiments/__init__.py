"""Training recipes: the runs the notebooks repeat, as module-level functions of frozen configs.

A recipe is a frozen dataclass (everything a run depends on, the seed included) and a
module-level function ``run(config) -> dict`` that builds the model for the seed, trains it
with one loss and returns a standard row (plain Python numbers and lists, so it can be cached,
pickled to another process and turned into a DataFrame). Notebooks map a recipe over a grid of
configs with :func:`companion.runs.map`; the grid is data, the notebook tells the story.

One module per family of runs, shared across papers where the runs are the same, named for
what it trains (look at the modules beside this file).

What :func:`companion.runs.map` relies on:

* **Everything a result depends on is a field of the config**, the seed included: the cache of
  finished runs is keyed by the canonical config (plus the package's source digest, the torch
  version and the device), so a value read from elsewhere (a global, an environment variable,
  a file that changes) would be served stale. Fields hold plain values: numbers, strings,
  booleans, None, tuples, enums, nested frozen dataclasses.
* **The result is plain data** (numbers, strings, lists, dicts; no tensors or models): it is
  pickled to the cache and, on a cluster, sent back from another machine.
* **Resources** a run needs on a Ray cluster are a class attribute, not a field (they never
  change a result): ``resources: ClassVar[runs.Resources] = runs.Resources(gpus=0.25)`` for a
  small net (four side by side on one GPU), ``Resources()`` (the default: one CPU, or one whole
  GPU on a GPU cluster) for a ResNet, ``Resources(cpus=4, gpus=0)`` for a CPU-only run.
* **Side by side on one GPU** (``runs.map(..., workers=k)`` on CUDA, threads with a stream
  each) only for recipes that draw from their own ``torch.Generator``, never the global RNG.

Look here before writing a builder or a runner in a notebook: if a recipe does almost what
you need, add a field to its config rather than a second recipe.
"""


def check_choices(config: object, **allowed: object) -> None:
    """Raise ``ValueError`` naming the first field of ``config`` whose value is not among its
    allowed ones (``check_choices(self, arch=ARCHS, loss=LOSSES)`` in ``__post_init__``)."""
    for field, choices in allowed.items():
        value = getattr(config, field)
        if value not in choices:  # type: ignore[operator]
            raise ValueError(f"{field} must be one of {choices}, got {value!r}")
