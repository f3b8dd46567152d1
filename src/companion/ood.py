"""Out-of-distribution scores and detection metrics (the unhinged paper's Sec. 4.2, App. C.4).

Scores are "larger = more in-distribution": :func:`max_softmax` (Hendrycks & Gimpel 2017),
:func:`energy` (Liu et al. 2020: ``T logsumexp(z/T)``, the negative free energy) and
:func:`feature_norm` (``||h||``). Metrics treat in-distribution samples as positives, as the
paper's Tables 3 and 6: :func:`fpr_at_tpr` (FPR95: the fraction of OOD samples scored at or
above the threshold that keeps 95% of ID samples), :func:`auroc` and :func:`aupr` (average
precision, AUPR-In). :func:`detection_metrics` returns all three in percent.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numpy.typing import ArrayLike
from scipy.stats import rankdata

__all__ = ["max_softmax", "energy", "feature_norm", "fpr_at_tpr", "auroc", "aupr", "detection_metrics"]


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """max_c softmax(z)_c."""
    return torch.softmax(logits.double(), dim=1).max(dim=1).values


def energy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T logsumexp(z/T): minus the free energy, larger for in-distribution inputs."""
    return temperature * torch.logsumexp(logits.double() / temperature, dim=1)


def feature_norm(features: torch.Tensor) -> torch.Tensor:
    """||h||_2 per sample."""
    return torch.linalg.vector_norm(features.double(), dim=1)


def _arrays(scores_id: ArrayLike, scores_ood: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    as_np = lambda s: s.detach().cpu().numpy() if isinstance(s, torch.Tensor) else np.asarray(s)  # noqa: E731
    a, b = as_np(scores_id).astype(np.float64).ravel(), as_np(scores_ood).astype(np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("need at least one ID and one OOD score")
    return a, b


def fpr_at_tpr(scores_id: ArrayLike, scores_ood: ArrayLike, tpr: float = 0.95) -> float:
    """FPR at the largest threshold whose TPR (fraction of ID scores >= threshold) reaches ``tpr``."""
    a, b = _arrays(scores_id, scores_ood)
    needed = math.ceil(tpr * len(a) - 1e-9)
    threshold = np.sort(a)[::-1][max(needed, 1) - 1]
    return float(np.mean(b >= threshold))


def auroc(scores_id: ArrayLike, scores_ood: ArrayLike) -> float:
    """P(ID score > OOD score) + P(tie)/2 (Mann-Whitney), ID as positives."""
    a, b = _arrays(scores_id, scores_ood)
    ranks = rankdata(np.concatenate([a, b]))
    return float((ranks[: len(a)].sum() - len(a) * (len(a) + 1) / 2) / (len(a) * len(b)))


def aupr(scores_id: ArrayLike, scores_ood: ArrayLike) -> float:
    """Average precision with ID as positives: sum over distinct thresholds of (R_n - R_{n-1}) P_n."""
    a, b = _arrays(scores_id, scores_ood)
    scores = np.concatenate([a, b])
    positive = np.concatenate([np.ones(len(a)), np.zeros(len(b))])
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]  # ties form one threshold
    true_pos = np.cumsum(positive)[last_of_group]
    predicted = last_of_group + 1
    precision, recall = true_pos / predicted, true_pos / len(a)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def detection_metrics(scores_id: ArrayLike, scores_ood: ArrayLike) -> dict[str, float]:
    """FPR95, AUROC and AUPR (ID positive), in percent as the paper's tables."""
    return {"fpr95": 100 * fpr_at_tpr(scores_id, scores_ood), "auroc": 100 * auroc(scores_id, scores_ood),
            "aupr": 100 * aupr(scores_id, scores_ood)}
