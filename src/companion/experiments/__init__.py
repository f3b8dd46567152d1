"""Training recipes: the runs the notebooks repeat, as module-level functions of frozen configs.

A recipe is a frozen dataclass (everything a run depends on, the seed included) and a
module-level function ``run(config) -> dict`` that builds the model for the seed, trains it
with one loss and returns a standard row (plain Python numbers and lists, so it can be cached,
pickled to another process and turned into a DataFrame). Notebooks map a recipe over a grid of
configs with :func:`companion.runs.map`; the grid is data, the notebook tells the story.

One module per family of runs, shared across papers where the runs are the same:

* :mod:`.common` - what every recipe shares (optimizer and schedule construction, rows).
* further modules as the notebooks need them (e.g. digits MLPs, CIFAR ResNet-18 runs).

Look here before writing a builder or a runner in a notebook: if a recipe does almost what
you need, add a field to its config rather than a second recipe.
"""
