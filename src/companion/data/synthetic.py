"""Small datasets that need no download: generated ones and scikit-learn's bundled ones.

Each builder returns ``(x, y, classes, source, info)`` as NumPy arrays (``y`` int64) for one
split; ``companion.data.load`` turns them into a ``Dataset``.

* ``spiral``: the dynamical-loss paper's 3-class spiral, exactly as its official
  ``make_dataset`` draws it (see the docstring).
* ``gaussian``, ``linear_separable``: i.i.d. generators; a sample of ``n`` points *is* the
  first ``n`` of a seeded shuffle of a larger sample, so ``n`` / ``per_class`` set the
  number drawn. The train and test splits are independent draws from one distribution.
* ``digits`` and the binary ``uci:*`` sets: scikit-learn's bundled copies, split 70/30,
  stratified, by ``seed``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Built = tuple[np.ndarray, np.ndarray, tuple[str, ...], str, dict[str, Any]]

TEST_FRACTION = 0.3

_SPLIT_STREAM = {"train": 0, "test": 1}


def spiral(split: str, seed: int, points_per_class: int = 100, num_classes: int = 3,
           revolutions: float = 4.0, noise: float = 0.2) -> Built:
    """The official spiral of Ruiz-Garcia et al. (``make_dataset`` in their Colab notebook).

    The code seeds NumPy's global generator once (``np.random.seed(0)``), then for each class
    ``j`` in turn: ``r = linspace(0, 1, N)``, ``t = linspace(w j, w j + revolutions pi, N) +
    0.2 randn(N)`` with ``w = 2 pi / C``, and ``x = (r cos t, r sin t)``; classes are stored
    one after the other. Here a private ``RandomState(seed)`` replays the same Mersenne-Twister
    stream without touching the global one. ``split="train"`` uses ``seed`` (0: the paper's
    data); ``split="test"`` uses ``seed + 1``, the held-out spiral of the addendum
    (``np.random.seed(1)``). The first point of every class is the origin, so at most
    (N - 1) / N + 1 / (N C) of the points can be classified correctly (298/300 by default).
    """
    rng = np.random.RandomState(seed + _SPLIT_STREAM[split])
    radius = np.linspace(0.0, 1.0, points_per_class)
    offset = 2 * math.pi / num_classes
    arms = []
    for j in range(num_classes):
        angle = (np.linspace(offset * j, offset * j + revolutions * math.pi, points_per_class)
                 + rng.randn(points_per_class) * noise)
        arms.append(np.c_[radius * np.cos(angle), radius * np.sin(angle)])
    x = np.concatenate(arms).astype(np.float64)
    y = np.repeat(np.arange(num_classes, dtype=np.int64), points_per_class)
    source = (f"synthetic spiral (official make_dataset of Ruiz-Garcia et al.: "
              f"{num_classes} classes x {points_per_class}, angle up to {revolutions:g} pi, "
              f"angular noise {noise:g}, NumPy seed {seed + _SPLIT_STREAM[split]})")
    return x, y, tuple(str(j) for j in range(num_classes)), source, {}


def _sample_rng(seed: int, split: str) -> np.random.Generator:
    """Independent streams for the train and test samples of one seed."""
    return np.random.default_rng([seed, _SPLIT_STREAM[split]])


def _sample_size(n: int | None, per_class: int | None, num_classes: int,
                 default_per_class: int) -> tuple[int, int | None]:
    if n is not None:
        return n, None
    per_class = default_per_class if per_class is None else per_class
    return per_class * num_classes, per_class


def gaussian(split: str, seed: int, n: int | None = None, per_class: int | None = None,
             num_classes: int = 2, dim: int = 2, separation: float = 3.0) -> Built:
    """Isotropic unit-variance Gaussian classes whose means lie ``separation`` apart.

    Means: for ``dim >= num_classes``, ``separation / sqrt(2)`` times the first basis vectors
    (every pair of means exactly ``separation`` apart); for ``2 <= dim < num_classes``, equally
    spaced on a circle in the first two coordinates (neighbours ``separation`` apart); for
    ``dim == 1``, equally spaced on the line. Labels cycle 0, 1, ..., K-1, so any prefix is
    balanced; default 100 points per class.
    """
    if num_classes < 2 or dim < 1:
        raise ValueError(f"need num_classes >= 2 and dim >= 1, got {num_classes}, {dim}")
    means = np.zeros((num_classes, dim))
    if dim >= num_classes:
        means[:, :num_classes] = np.eye(num_classes) * separation / math.sqrt(2)
    elif dim >= 2:
        radius = separation / (2 * math.sin(math.pi / num_classes))
        angle = 2 * math.pi * np.arange(num_classes) / num_classes
        means[:, 0], means[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
    else:
        means[:, 0] = separation * (np.arange(num_classes) - (num_classes - 1) / 2)
    total, _ = _sample_size(n, per_class, num_classes, 100)
    y = np.arange(total, dtype=np.int64) % num_classes
    x = means[y] + _sample_rng(seed, split).standard_normal((total, dim))
    source = (f"synthetic Gaussian classes ({num_classes} classes, dim {dim}, means "
              f"{separation:g} apart, unit variance, seed {seed})")
    return x, y, tuple(str(k) for k in range(num_classes)), source, {"means": means}


def linear_separable(split: str, seed: int, n: int | None = None, per_class: int | None = None,
                     dim: int = 10, margin: float = 0.1, condition: float = 10.0) -> Built:
    """Binary data separable with geometric margin >= ``margin`` by a seeded unit vector w*.

    x ~ N(0, diag(s^2)) with standard deviations s log-spaced from 1 down to
    ``1 / sqrt(condition)`` (so the covariance has condition number ``condition``; the
    rooted-loss digest's linear-model pilot uses anisotropic data of this kind), y = 1[w*.x > 0],
    and points with |w*.x| < margin are rejected. w* depends on ``seed`` only, so the train
    and test splits share it (returned in ``info["w_star"]``). Default 200 points;
    ``per_class`` draws until both labels have that many.
    """
    if dim < 1 or margin < 0 or condition < 1:
        raise ValueError(f"need dim >= 1, margin >= 0, condition >= 1; got {dim}, {margin}, "
                         f"{condition}")
    w_star = np.random.default_rng([seed, 2]).standard_normal(dim)
    w_star /= np.linalg.norm(w_star)
    scales = np.logspace(0.0, -0.5 * math.log10(condition), dim)
    total = 200 if n is None and per_class is None else n
    rng = _sample_rng(seed, split)
    kept_x, kept_y = [], []
    counts = np.zeros(2, dtype=np.int64)
    while (counts.min() < per_class) if per_class is not None else (counts.sum() < total):
        x = rng.standard_normal((4 * (total or 2 * per_class), dim)) * scales
        score = x @ w_star
        keep = np.abs(score) >= margin
        kept_x.append(x[keep])
        kept_y.append((score[keep] > 0).astype(np.int64))
        counts += np.bincount(kept_y[-1], minlength=2)
    x, y = np.concatenate(kept_x), np.concatenate(kept_y)
    if per_class is not None:
        rank = np.empty_like(y)
        for label in (0, 1):
            rank[y == label] = np.arange(int((y == label).sum()))
        chosen = rank < per_class
    else:
        chosen = np.arange(len(y)) < total
    source = (f"synthetic linearly separable data (dim {dim}, margin {margin:g}, covariance "
              f"condition {condition:g}, seed {seed})")
    return x[chosen], y[chosen], ("0", "1"), source, {"w_star": w_star, "margin": margin}


def _split(x: np.ndarray, y: np.ndarray, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The stratified 70/30 train/test split fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=seed)
    return (x_train, y_train) if split == "train" else (x_test, y_test)


def digits(split: str, seed: int) -> Built:
    """scikit-learn's bundled 8x8 digits (1797 images) as float32 (N, 64) in [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x, y = _split(bunch.data.astype(np.float32) / 16.0, bunch.target.astype(np.int64), split,
                  seed)
    source = f"scikit-learn load_digits (bundled), stratified 70/30 split, seed {seed}"
    return x, y, tuple(str(k) for k in range(10)), source, {}


# name -> (scikit-learn loader, the two original classes that become 0 and 1 (None: all))
UCI_BINARY: dict[str, tuple[str, tuple[int, int] | None]] = {
    "breast_cancer": ("load_breast_cancer", None),
    "wine_0v1": ("load_wine", (0, 1)),
    "iris_1v2": ("load_iris", (1, 2)),
    "digits_3v8": ("load_digits", (3, 8)),
}


def uci(subset: str, split: str, seed: int) -> Built:
    """A binary scikit-learn bundled set: raw float64 features, y in {0, 1}, 70/30 split.

    breast_cancer keeps scikit-learn's labels (0 malignant, 1 benign); the pairs keep two
    classes and map the first to 0 and the second to 1.
    """
    import sklearn.datasets

    loader, pair = UCI_BINARY[subset]
    bunch = getattr(sklearn.datasets, loader)()
    x, y = bunch.data.astype(np.float64), bunch.target.astype(np.int64)
    names = [str(name) for name in bunch.target_names]
    if pair is not None:
        keep = np.isin(y, pair)
        x, y = x[keep], (y[keep] == pair[1]).astype(np.int64)
        names = [names[pair[0]], names[pair[1]]]
    x, y = _split(x, y, split, seed)
    source = (f"scikit-learn {loader} (bundled){'' if pair is None else f', classes {pair}'}, "
              f"stratified 70/30 split, seed {seed}")
    return x, y, tuple(names), source, {}
