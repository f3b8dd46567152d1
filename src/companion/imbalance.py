"""Class-imbalanced subsets of a balanced training set (the unhinged paper's Sec. 4.2, App. C.3).

With C classes, n_max samples of the largest class and ratio rho = max_c n_c / min_c n_c:

* ``exp`` (long-tailed, Cui et al. 2019): n_c = int(n_max * rho^(-c/(C-1))), c = 0..C-1;
* ``step`` (Buda et al. 2018): the first floor(C/2) classes keep n_max, the others int(n_max/rho).

These are the formulas of the long-tail code the paper follows (LDAM-DRW's
``get_img_num_per_cls``). :func:`subset` draws the per-class counts from a balanced set with a
seeded permutation per class; the test set stays balanced.
"""

from __future__ import annotations

import numpy as np
import torch

PROFILES = ("exp", "step")


def class_counts(n_max: int, num_classes: int, ratio: float, profile: str = "exp") -> list[int]:
    """Per-class sample counts of the imbalanced set (class 0 the largest)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if ratio < 1 or num_classes < 2 or n_max < 1:
        raise ValueError("need ratio >= 1, num_classes >= 2 and n_max >= 1")
    if profile == "exp":
        return [int(n_max * ratio ** (-c / (num_classes - 1))) for c in range(num_classes)]
    half = num_classes // 2
    return [n_max] * half + [int(n_max / ratio)] * (num_classes - half)


def subset(labels: np.ndarray | torch.Tensor, counts: list[int], seed: int = 0) -> np.ndarray:
    """Sorted indices that keep ``counts[c]`` samples of class c, chosen by a seeded permutation."""
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c, count in enumerate(counts):
        members = np.flatnonzero(y == c)
        if count > len(members):
            raise ValueError(f"class {c} has {len(members)} samples, {count} requested")
        chosen.append(rng.permutation(members)[:count])
    return np.sort(np.concatenate(chosen))


def imbalanced(labels: np.ndarray | torch.Tensor, num_classes: int, ratio: float, profile: str = "exp",
               seed: int = 0, n_max: int | None = None) -> np.ndarray:
    """Indices of an imbalanced subset; ``n_max`` defaults to the size of the smallest class."""
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n_max = int(np.bincount(y, minlength=num_classes).min()) if n_max is None else n_max
    return subset(y, class_counts(n_max, num_classes, ratio, profile), seed)
