"""Metrics against independent computations: explicit loops, scipy pinv, brute-force ECE, exact ETFs."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from companion import metrics

GEN = torch.Generator().manual_seed(0)


def rand(*shape):
    return torch.randn(*shape, generator=GEN, dtype=torch.float64)


def class_major(num_classes, per_class):
    return torch.arange(num_classes).repeat_interleave(per_class)


# -- independent reference: nc_loss evaluate.py written out with numpy loops -----------------


def reference_nc(features, labels, W, b, center_w=True):
    H = features.numpy().astype(np.float64)
    y = labels.numpy()
    Wn = W.numpy().astype(np.float64)
    K = Wn.shape[0]
    mu_g = H.mean(axis=0)
    mu = [H[y == k].mean(axis=0) for k in range(K)]
    sigma_w = np.zeros((H.shape[1], H.shape[1]))
    for i in range(len(y)):
        dev = H[i] - mu[y[i]]
        sigma_w += np.outer(dev, dev)
    sigma_w /= len(y)
    sigma_b = sum(np.outer(m - mu_g, m - mu_g) for m in mu) / K
    nc1 = np.trace(sigma_w @ scipy.linalg.pinv(sigma_b)) / K
    target = (np.eye(K) - np.ones((K, K)) / K) / math.sqrt(K - 1)
    Wc = Wn - Wn.mean(axis=0, keepdims=True) if center_w else Wn
    wwt = Wc @ Wc.T
    M = np.stack([m - mu_g for m in mu], axis=1)
    wm = Wc @ M
    mtm = M.T @ M
    bias = np.zeros(K) if b is None else b.numpy()
    mismatch = 0
    for i in range(len(y)):
        ncc = min(range(K), key=lambda k: np.sum((H[i] - mu[k]) ** 2))
        mismatch += int(np.argmax(Wn @ H[i] + bias) != ncc)
    return {
        "nc1": nc1,
        "nc2_w": np.linalg.norm(wwt / np.linalg.norm(wwt) - target),
        "nc2_h": np.linalg.norm(mtm / np.linalg.norm(mtm) - target),
        "nc3": np.linalg.norm(wm / np.linalg.norm(wm) - target),
        "nc4": mismatch / len(y),
        "wmu_b": np.linalg.norm(Wn @ mu_g + bias),
    }


def etf_configuration(K=5, d=8, n=4, seed=3):
    W = 2.5 * metrics.simplex_etf(K, d, seed=seed)
    labels = class_major(K, n)
    features = 0.7 * W[labels]
    return features, labels, W


KEYS = ("nc1", "nc2_w", "nc2_h", "nc3", "nc4", "wmu_b")


@pytest.mark.parametrize("K,d", [(5, 8), (10, 9), (4, 4), (2, 3)])
@pytest.mark.parametrize("center_w", [True, False])
def test_exact_simplex_etf_is_fully_collapsed(K, d, center_w):
    features, labels, W = etf_configuration(K, d)
    nc = metrics.neural_collapse(features, labels, W, torch.zeros(K), center_w=center_w)
    for key in KEYS:
        assert abs(nc[key]) < 1e-10, (key, nc[key])


def test_random_features_give_values_of_order_one():
    K, n, d = 6, 20, 12
    labels = class_major(K, n)
    nc = metrics.neural_collapse(rand(K * n, d), labels, rand(K, d), rand(K))
    assert 0.3 < nc["nc1"] < 100
    for key in ("nc2_w", "nc2_h", "nc3"):
        assert 0.1 < nc[key] < 2.0, (key, nc[key])
    assert 0.3 < nc["nc4"] <= 1.0
    assert all(math.isfinite(v) for v in nc.values())


@pytest.mark.parametrize("center_w", [True, False])
@pytest.mark.parametrize("balanced", [True, False])
def test_agrees_with_explicit_loops_and_scipy_pinv(center_w, balanced):
    K, d = 5, 7
    labels = class_major(K, 6) if balanced else torch.cat([torch.full((3 + k,), k) for k in range(K)])
    # class structure plus noise, so that the metrics are neither 0 nor degenerate
    features = 2.0 * rand(K, d)[labels] + 0.5 * rand(len(labels), d)
    W = rand(K, d) + 0.3
    b = rand(K)
    ours = metrics.neural_collapse(features, labels, W, b, center_w=center_w)
    ref = reference_nc(features, labels, W, b, center_w=center_w)
    for key in KEYS:
        assert ours[key] == pytest.approx(ref[key], rel=1e-10, abs=1e-12), key


def test_nc1_in_low_dimension_matches_pinv():
    """d < K-1: Sigma_B has rank d, and the pseudo-inverse must drop the null directions."""
    K, d, n = 8, 3, 5
    labels = class_major(K, n)
    features = rand(K, d)[labels] + 0.3 * rand(K * n, d)
    ours = metrics.neural_collapse(features, labels, rand(K, d))
    ref = reference_nc(features, labels, rand(K, d), None)
    assert ours["nc1"] == pytest.approx(ref["nc1"], rel=1e-10)
    assert ours["nc2_h"] == pytest.approx(ref["nc2_h"], rel=1e-10)


@pytest.mark.parametrize("K, d, seed", [(12, 2, 15), (30, 3, 0), (50, 5, 1)])
def test_nc1_with_many_more_classes_than_dimensions_matches_pinv(K, d, seed):
    """K - 1 > d: the K x K Gram the metric diagonalizes has K - 1 - d round-off eigenvalues
    that the d x d Sigma_B scipy inverts does not have; they must not count (at (12, 2, 15)
    one of them lies above the cut d * eps and moved nc1 by 7% before the rank cap)."""
    gen = torch.Generator().manual_seed(seed)
    labels = class_major(K, 4)
    features = torch.randn(K, d, generator=gen, dtype=torch.float64)[labels] + 0.3 * torch.randn(
        K * 4, d, generator=gen, dtype=torch.float64)
    W = torch.randn(K, d, generator=gen, dtype=torch.float64)
    ours = metrics.neural_collapse(features, labels, W)["nc1"]
    assert ours == pytest.approx(reference_nc(features, labels, W, None)["nc1"], rel=1e-8)


@pytest.mark.parametrize("dim", [3, 8, 20])
def test_pinv_cut_is_scipys_default_for_the_d_by_d_sigma_b(dim):
    """scipy.linalg.pinv (what nc_loss's evaluate.py calls on Sigma_B) keeps singular values
    above max(d, d) * eps * the largest: a relative eigenvalue of (d - 1/2) eps is dropped,
    (d + 1/2) eps kept, by scipy and by the metric's cut alike."""
    eps = np.finfo(np.float64).eps
    for factor, rank in ((dim - 0.5, 1), (dim + 0.5, 2)):
        eigenvalues = np.array([1.0, factor * eps] + [0.0] * (dim - 2))
        _, scipy_rank = scipy.linalg.pinv(np.diag(eigenvalues), return_rank=True)
        ours = int(metrics._pinv_keep(torch.tensor(eigenvalues), dim).sum())
        assert scipy_rank == ours == rank


@pytest.mark.parametrize("relative, kept", [(8.0, True), (1.0, False)])
def test_nc1_keeps_the_directions_scipy_keeps_when_k_exceeds_d(relative, kept):
    """K = 12 classes in d = 4 dimensions, Sigma_B with one eigenvalue at ``relative`` * eps
    of the largest: 8 eps lies between scipy's cut d * eps and the former max(d, K) * eps, so
    scipy keeps that direction (nc1 of order 1e12) and so must the metric; at 1 eps both drop it."""
    K, d, n = 12, 4, 5
    gen = torch.Generator().manual_seed(0)
    ones = torch.ones(K, 1, dtype=torch.float64)
    frame = torch.linalg.qr(torch.cat([ones, torch.randn(K, d, generator=gen, dtype=torch.float64)], 1))[0]
    rotation = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))[0]
    scales = torch.tensor([1.0, 1.0, 1.0, math.sqrt(relative * np.finfo(np.float64).eps)], dtype=torch.float64)
    means = rotation @ torch.diag(scales) @ frame[:, 1:d + 1].T  # (d, K), columns sum to 0
    labels = class_major(K, n)
    noise = 0.1 * torch.randn(K, n, d, generator=gen, dtype=torch.float64)
    features = means.T[labels] + (noise - noise.mean(dim=1, keepdim=True)).reshape(K * n, d)
    W = torch.randn(K, d, generator=gen, dtype=torch.float64)
    ours = metrics.neural_collapse(features, labels, W)["nc1"]
    ref = reference_nc(features, labels, W, None)["nc1"]
    if kept:  # the tiny eigenvalue is known to a few eps: agreement to a factor, both huge
        assert ours > 1e9 and ref > 1e9 and 1 / 3 < ours / ref < 3
    else:
        assert ours < 1e3 and ours == pytest.approx(ref, rel=1e-6)


def test_invariant_to_a_global_rotation():
    K, n, d = 5, 8, 9
    labels = class_major(K, n)
    features, W, b = rand(K, d)[labels] + 0.4 * rand(K * n, d), rand(K, d), rand(K)
    rotation, _ = torch.linalg.qr(rand(d, d))
    before = metrics.neural_collapse(features, labels, W, b)
    after = metrics.neural_collapse(features @ rotation.T, labels, W @ rotation.T, b)
    for key in KEYS:
        assert after[key] == pytest.approx(before[key], rel=1e-10, abs=1e-12), key


def test_scale_invariance_survives_under_and_overflow():
    K, n, d = 4, 5, 6
    labels = class_major(K, n)
    features, W = rand(K, d)[labels] + 0.4 * rand(K * n, d), rand(K, d)
    base = metrics.neural_collapse(features, labels, W)
    for scale in (1e-200, 1e200):
        scaled = metrics.neural_collapse(features * scale, labels, W * scale)
        for key in ("nc1", "nc2_w", "nc2_h", "nc3", "nc4"):
            assert scaled[key] == pytest.approx(base[key], rel=1e-10), (key, scale)


def test_zero_features_or_classifier_give_the_documented_finite_values():
    K, n, d = 4, 3, 5
    labels = class_major(K, n)
    W = rand(K, d)
    nc = metrics.neural_collapse(torch.zeros(K * n, d, dtype=torch.float64), labels, W)
    assert nc["nc1"] == 0.0 and nc["nc2_h"] == pytest.approx(1.0) and nc["nc3"] == pytest.approx(1.0)
    assert nc["wmu_b"] == 0.0
    nc = metrics.neural_collapse(rand(K * n, d), labels, torch.zeros(K, d, dtype=torch.float64))
    assert nc["nc2_w"] == pytest.approx(1.0) and nc["nc3"] == pytest.approx(1.0)
    assert all(math.isfinite(v) for v in nc.values())


def test_centring_matters_only_when_rows_do_not_sum_to_zero():
    features, labels, W = etf_configuration(K=5, d=8)
    shifted = W + torch.linspace(0.5, 1.5, 8, dtype=torch.float64)  # same shift for every row
    centred = metrics.neural_collapse(features, labels, shifted, center_w=True)
    raw = metrics.neural_collapse(features, labels, shifted, center_w=False)
    assert centred["nc2_w"] < 1e-10 and centred["nc3"] < 1e-10
    assert raw["nc2_w"] > 0.1 and raw["nc3"] > 0.1


def test_missing_class_is_an_error():
    with pytest.raises(ValueError, match="no sample"):
        metrics.neural_collapse(rand(6, 3), torch.tensor([0, 0, 1, 1, 1, 0]), rand(3, 3))


@pytest.mark.parametrize("K,d,seed", [(2, 1, None), (3, 2, 1), (5, 5, None), (10, 9, 4), (10, 20, 7), (6, 6, 2)])
def test_simplex_etf_gram(K, d, seed):
    W = metrics.simplex_etf(K, d, seed=seed)
    assert W.shape == (K, d)
    expected = (K / (K - 1)) * torch.eye(K, dtype=torch.float64) - 1 / (K - 1)
    torch.testing.assert_close(W @ W.T, expected, atol=1e-13, rtol=0)
    with pytest.raises(ValueError):
        metrics.simplex_etf(K, K - 2)


# -- classification metrics ------------------------------------------------------------------


def test_accuracy_per_class_and_margins_match_loops():
    N, K = 50, 4
    logits, y = rand(N, K), torch.randint(0, K, (N,), generator=GEN)
    y[y == 3] = 2  # class 3 is absent: its per-class accuracy is NaN
    pred = [int(np.argmax(row)) for row in logits.numpy()]
    assert metrics.accuracy(logits, y) == pytest.approx(np.mean([p == t for p, t in zip(pred, y.tolist())]))
    per_class = metrics.per_class_accuracy(logits, y, K)
    for k in range(3):
        idx = [i for i in range(N) if y[i] == k]
        assert per_class[k].item() == pytest.approx(np.mean([pred[i] == k for i in idx]))
    assert math.isnan(per_class[3].item())
    expected = [logits[i, y[i]].item() - max(logits[i, j].item() for j in range(K) if j != y[i]) for i in range(N)]
    np.testing.assert_allclose(metrics.margins(logits, y).numpy(), expected, rtol=1e-15)
    assert ((metrics.margins(logits, y) > 0).numpy() == (np.array(pred) == y.numpy())).all()


def brute_force_ece(probs, y, bins):
    edges = np.linspace(0.0, 1.0, bins + 1)
    total, n = 0.0, len(y)
    for m in range(bins):
        members = [i for i in range(n)
                   if (edges[m] < probs[i].max() <= edges[m + 1]) or (m == 0 and probs[i].max() == 0)]
        if members:
            conf = np.mean([probs[i].max() for i in members])
            acc = np.mean([int(np.argmax(probs[i])) == y[i] for i in members])
            total += len(members) / n * abs(acc - conf)
    return total


@pytest.mark.parametrize("bins", [1, 10, 15])
def test_ece_matches_brute_force(bins):
    N, K = 400, 5
    logits = 2.0 * rand(N, K)
    y = torch.randint(0, K, (N,), generator=GEN)
    probs = torch.softmax(logits, 1).numpy()
    ece = metrics.expected_calibration_error(logits, y, bins=bins)
    assert ece == pytest.approx(brute_force_ece(probs, y.numpy(), bins), rel=1e-12, abs=1e-15)
    assert metrics.expected_calibration_error(torch.softmax(logits, 1), y, bins=bins,
                                              probabilities=True) == pytest.approx(ece, rel=1e-12)
    table = metrics.calibration_bins(logits, y, bins=bins)
    assert table["count"].sum() == N and len(table) == bins
    assert table["upper"].iloc[-1] == 1.0


def test_perfectly_confident_and_correct_predictions_have_zero_ece():
    y = torch.tensor([0, 1, 2, 1])
    logits = 1000.0 * torch.nn.functional.one_hot(y, 3).double()
    assert metrics.expected_calibration_error(logits, y) == 0.0
    table = metrics.calibration_bins(logits, y, bins=4)
    assert table["count"].tolist() == [0, 0, 0, 4] and table["accuracy"].isna().sum() == 3
