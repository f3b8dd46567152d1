"""Imbalanced subsets and OOD metrics (against scikit-learn)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from companion import imbalance, ood


def test_exponential_profile_is_cui_et_al():
    counts = imbalance.class_counts(5000, 10, 100, "exp")
    assert counts[0] == 5000 and counts[-1] == 50
    assert counts == [int(5000 * 0.01 ** (c / 9)) for c in range(10)]
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_step_profile_is_buda_et_al():
    assert imbalance.class_counts(5000, 10, 10, "step") == [5000] * 5 + [500] * 5
    assert imbalance.class_counts(100, 5, 4, "step") == [100, 100, 25, 25, 25]
    with pytest.raises(ValueError):
        imbalance.class_counts(100, 5, 4, "linear")


@pytest.mark.parametrize("profile", ["exp", "step"])
def test_subset_keeps_the_requested_counts(profile):
    y = np.repeat(np.arange(6), 40)[np.random.default_rng(0).permutation(240)]
    idx = imbalance.imbalanced(torch.tensor(y), 6, 10, profile, seed=3)
    assert len(np.unique(idx)) == len(idx)
    np.testing.assert_array_equal(np.bincount(y[idx], minlength=6), imbalance.class_counts(40, 6, 10, profile))
    assert not np.array_equal(idx, imbalance.imbalanced(y, 6, 10, profile, seed=4))
    with pytest.raises(ValueError):
        imbalance.subset(y, [41] * 6)


def scores(seed=0, n_id=300, n_ood=200, ties=False):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(1.0, 1.0, n_id), rng.normal(0.0, 1.2, n_ood)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    return a, b


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_and_aupr_match_scikit_learn(ties):
    a, b = scores(1, ties=ties)
    labels = np.r_[np.ones(len(a)), np.zeros(len(b))]
    both = np.r_[a, b]
    assert ood.auroc(a, b) == pytest.approx(roc_auc_score(labels, both), abs=1e-12)
    assert ood.aupr(a, b) == pytest.approx(average_precision_score(labels, both), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fpr95_matches_the_roc_curve(seed):
    a, b = scores(seed)
    fpr, tpr, _ = roc_curve(np.r_[np.ones(len(a)), np.zeros(len(b))], np.r_[a, b], drop_intermediate=False)
    assert ood.fpr_at_tpr(a, b) == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)
    metrics = ood.detection_metrics(torch.tensor(a), torch.tensor(b))
    assert metrics["fpr95"] == pytest.approx(100 * ood.fpr_at_tpr(a, b))


def test_scores():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    p = torch.softmax(logits, 1).max(1).values.double()
    torch.testing.assert_close(ood.max_softmax(logits), p)
    torch.testing.assert_close(ood.energy(logits), torch.log(torch.exp(logits.double()).sum(1)))
    torch.testing.assert_close(ood.energy(logits, 2.0), 2 * torch.log(torch.exp(logits.double() / 2).sum(1)))
    torch.testing.assert_close(ood.feature_norm(torch.tensor([[3.0, 4.0]])), torch.tensor([5.0], dtype=torch.float64))
    # perfect separation
    assert ood.auroc([2, 3], [0, 1]) == 1.0 and ood.fpr_at_tpr([2, 3], [0, 1]) == 0.0 and ood.aupr([2, 3], [0, 1]) == 1.0
