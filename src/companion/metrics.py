"""Classification and neural-collapse metrics, computed exactly as the papers define them.

Classification: :func:`accuracy`, :func:`per_class_accuracy`, :func:`margins`,
:func:`expected_calibration_error` and :func:`calibration_bins` (the numbers a reliability
diagram draws). Geometry: :func:`neural_collapse` (NC1-NC4 of Papyan, Han and Donoho,
PNAS 2020, in the form of the official code of Zhou et al., NeurIPS 2022,
github.com/jinxinzhou/nc_loss ``evaluate.py``, and ||W mu_G + b||) and :func:`simplex_etf`.

Everything runs on the tensors' own device. Per-class sums are one-hot matrix products,
not scatter/index_add, so they are deterministic on CUDA too; the NC metrics work in float64.
"""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F

__all__ = [
    "accuracy", "per_class_accuracy", "margins", "calibration_bins",
    "expected_calibration_error", "neural_collapse", "simplex_etf",
]


# -- classification -------------------------------------------------------------------------


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of rows whose argmax equals the label (ties go to the lowest index)."""
    return (logits.argmax(dim=1) == y.to(logits.device)).double().mean().item()


def per_class_accuracy(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K,) float64 accuracy within each true class; NaN for a class with no sample."""
    y = y.to(logits.device)
    onehot = F.one_hot(y.long(), num_classes).double()
    correct = (logits.argmax(dim=1) == y).double()
    counts = onehot.sum(dim=0)
    hits = onehot.T @ correct
    return torch.where(counts > 0, hits / counts.clamp_min(1), torch.full_like(counts, math.nan))


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N,) z_y - max_{j != y} z_j: positive exactly when a sample is classified correctly."""
    y = y.long().to(logits.device)
    target = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], -math.inf)
    return target - others.max(dim=1).values


def _confidence_and_correct(logits: torch.Tensor, y: torch.Tensor,
                            probabilities: bool) -> tuple[torch.Tensor, torch.Tensor]:
    probs = logits.double() if probabilities else torch.softmax(logits.double(), dim=1)
    confidence, prediction = probs.max(dim=1)
    return confidence, (prediction == y.to(prediction.device)).double()


def calibration_bins(logits: torch.Tensor, y: torch.Tensor, bins: int = 15, *,
                     probabilities: bool = False) -> pd.DataFrame:
    """The reliability-diagram table: one row per equal-width confidence bin.

    Confidence is the top softmax probability (or the top entry of ``logits`` itself when
    ``probabilities=True``), the prediction its argmax. Bin m covers ((m-1)/B, m/B] (the
    first bin also takes confidence 0), as in Guo et al. 2017 and Naeini et al. 2015.
    Columns: ``lower``, ``upper``, ``count``, ``confidence`` (mean confidence), ``accuracy``
    (mean correctness), ``gap`` = accuracy - confidence; empty bins have count 0 and NaN.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    confidence, correct = _confidence_and_correct(logits, y, probabilities)
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64, device=confidence.device)
    # bucketize(right=False) gives i with edges[i] < c <= edges[i+1] on the inner edges.
    index = torch.bucketize(confidence, edges[1:-1], right=False)
    onehot = F.one_hot(index, bins).double()
    count = onehot.sum(dim=0)
    safe = count.clamp_min(1)
    mean_conf = torch.where(count > 0, (onehot.T @ confidence) / safe, math.nan)
    mean_acc = torch.where(count > 0, (onehot.T @ correct) / safe, math.nan)
    return pd.DataFrame({
        "lower": edges[:-1].cpu().numpy(), "upper": edges[1:].cpu().numpy(),
        "count": count.cpu().numpy().astype(int), "confidence": mean_conf.cpu().numpy(),
        "accuracy": mean_acc.cpu().numpy(), "gap": (mean_acc - mean_conf).cpu().numpy(),
    })


def expected_calibration_error(logits: torch.Tensor, y: torch.Tensor, bins: int = 15, *,
                               probabilities: bool = False) -> float:
    """ECE = sum_m (|B_m| / N) |acc(B_m) - conf(B_m)| over the bins of :func:`calibration_bins`.

    The standard equal-width definition (Guo et al. 2017, eq. 3; the unhinged paper's eq. 103
    with B bins, B = 15 by default as nc_loss's evaluate.py uses). A fraction in [0, 1].
    """
    table = calibration_bins(logits, y, bins, probabilities=probabilities)
    filled = table[table["count"] > 0]
    return float((filled["count"] * filled["gap"].abs()).sum() / table["count"].sum())


# -- neural collapse ------------------------------------------------------------------------


def _etf_distance(gram: torch.Tensor) -> float:
    """|| G/||G||_F - (I - 11^T/K)/sqrt(K-1) ||_F, with G/||G||_F := 0 when G = 0 (value 1)."""
    k = gram.shape[0]
    target = (torch.eye(k, dtype=gram.dtype, device=gram.device) - 1.0 / k) / math.sqrt(k - 1)
    norm = torch.linalg.matrix_norm(gram)
    unit = gram / norm if norm > 0 else torch.zeros_like(gram)
    return torch.linalg.matrix_norm(unit - target).item()


def _unit_scale(x: torch.Tensor) -> torch.Tensor:
    """x divided by its largest |entry| (x itself if zero): the scale-free metrics then neither
    underflow nor overflow when a run shrinks towards 0 or blows up."""
    peak = x.abs().max()
    return x / peak if peak > 0 else x


def _pinv_keep(eigenvalues: torch.Tensor, dim: int) -> torch.Tensor:
    """Which of ``eigenvalues`` (ascending, of a PSD matrix of rank <= ``dim``) the default
    ``scipy.linalg.pinv`` of the d x d matrix keeps: those above ``dim * eps * largest``
    (float64 eps), and at most the ``dim`` largest (a K x K Gram with K - 1 > d has
    K - 1 - d eigenvalues that are 0 in exact arithmetic and round-off here; the d x d
    matrix does not have them)."""
    cut = dim * torch.finfo(torch.float64).eps * eigenvalues.max().clamp_min(0)
    keep = eigenvalues > cut
    keep[: max(0, len(eigenvalues) - dim)] = False
    return keep


def neural_collapse(features: torch.Tensor, labels: torch.Tensor, W: torch.Tensor,
                    b: torch.Tensor | None = None, *, center_w: bool = True) -> dict[str, float]:
    """NC metrics of features (N, d) with labels (N,) and a classifier W (K, d), b (K,).

    Definitions (Papyan, Han and Donoho, PNAS 2020; nc_loss ``evaluate.py``), with mu_G the
    mean of all N features, mu_k the class means, M = [mu_1 - mu_G, ..., mu_K - mu_G] (d, K),
    Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T, Sigma_B = (1/K) M M^T and
    P = (I - 11^T/K)/sqrt(K-1) (unit Frobenius norm):

    - ``nc1`` = tr(Sigma_W Sigma_B^+)/K (variability collapse).
    - ``nc2_w`` = ||W W^T/||W W^T||_F - P||_F (classifier -> simplex ETF), ``nc2_h`` the same
      with the centred class means, M^T M (features -> simplex ETF).
    - ``nc3`` = ||W M/||W M||_F - P||_F (self-duality in nc_loss's form).
    - ``nc4`` = fraction of samples with argmax_k (W h + b)_k != argmin_k ||h - mu_k||
      (Papyan's nearest-class-centre mismatch; ties go to the lowest class index).
    - ``wmu_b`` = ||W mu_G + b|| (what nc_loss's plots label "NC4"), with the uncentred W.

    ``center_w=True`` (nc_loss) replaces W by W - mean of its rows in ``nc2_w`` and ``nc3``;
    ``center_w=False`` is tding1/Neural-Collapse's ``validate_NC.py``. Both agree at a UFM
    optimum, where the rows of W sum to 0.

    Sigma_B^+ is the pseudo-inverse with the cut of ``scipy.linalg.pinv``, which nc_loss's
    ``evaluate.py`` calls on the d x d Sigma_B: eigenvalues of Sigma_B at or below
    d * eps * the largest are dropped (scipy's default ``rtol = max(d, d) * eps``; eps of
    float64 here, where the official code passes float32 features and so cuts at
    d * 1.2e-7 relative). It is computed from the K x K Gram of M on the complement of the
    class-size vector (which M always annihilates), so no d x d matrix is formed.
    Degenerate inputs give finite values by these conventions: a zero Gram is at distance 1
    from P (so W = 0 gives ``nc2_w`` = ``nc3`` = 1, and H = 0 gives ``nc2_h`` =
    ``nc3`` = 1), and Sigma_B = 0 gives ``nc1`` = 0 (pinv(0) = 0, as in the papers' code).
    Every label in 0..K-1 must occur.
    """
    if features.ndim != 2 or W.ndim != 2 or features.shape[1] != W.shape[1]:
        raise ValueError(f"need features (N, d) and W (K, d), got {tuple(features.shape)} "
                         f"and {tuple(W.shape)}")
    num_classes, dim = W.shape
    labels = labels.long().to(features.device)
    onehot = F.one_hot(labels, num_classes).double()
    counts = onehot.sum(dim=0)
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0)[:, 0].tolist()
        raise ValueError(f"classes {missing} have no sample; NC metrics need every class")
    W64 = W.detach().double().to(features.device)
    b64 = (torch.zeros(num_classes, dtype=torch.float64, device=features.device) if b is None
           else b.detach().double().to(features.device))
    H64 = features.detach().double()
    total = H64.shape[0]

    wmu_b = torch.linalg.vector_norm(W64 @ H64.mean(dim=0) + b64).item()
    # The rest is invariant to rescaling H and W: work on unit-scaled copies. The decisions
    # argmax(W h + b) are too, once b is divided by both scales (no under/overflow of W h).
    h_scale, w_scale = H64.abs().max(), W64.abs().max()
    if h_scale > 0 and w_scale > 0:
        decisions = (H64 / h_scale @ (W64 / w_scale).T + b64 / w_scale / h_scale).argmax(dim=1)
    else:
        decisions = (H64 @ W64.T + b64).argmax(dim=1)
    H64 = _unit_scale(H64)
    mu_g = H64.mean(dim=0)
    means = (onehot.T @ H64) / counts[:, None]  # (K, d)
    sq_dist = H64.pow(2).sum(1, keepdim=True) - 2 * H64 @ means.T + means.pow(2).sum(1)[None, :]
    nc4 = (decisions != sq_dist.argmin(dim=1)).double().mean().item()
    centred_means = means - mu_g  # M^T, (K, d)
    within = H64 - onehot @ means  # h_i - mu_{y_i}, (N, d)

    # Sigma_B = (1/K) M M^T. On the complement Q of the class-size vector n (M n = 0),
    # G = Q^T M^T M Q / K holds Sigma_B's nonzero eigenvalues lam_i, with unit eigenvectors
    # u_i = M Q v_i / sqrt(K lam_i); then tr(Sigma_W Sigma_B^+) = (1/N) sum ||D u_i||^2 / lam_i.
    q_full, _ = torch.linalg.qr(counts[:, None], mode="complete")
    basis = q_full[:, 1:]  # (K, K-1), orthonormal, orthogonal to n
    m_q = centred_means.T @ basis  # (d, K-1)
    lam, vec = torch.linalg.eigh(m_q.T @ m_q / num_classes)
    keep = _pinv_keep(lam, dim)
    if keep.any():
        directions = within @ (m_q @ vec[:, keep])  # D M Q v_i, (N, r)
        nc1 = (directions.pow(2).sum(0) / lam[keep].pow(2)).sum().item() / (
            num_classes ** 2 * total)
    else:
        nc1 = 0.0

    W_unit = _unit_scale(W64)
    W_geo = W_unit - W_unit.mean(dim=0, keepdim=True) if center_w else W_unit
    return {
        "nc1": nc1,
        "nc2_w": _etf_distance(W_geo @ W_geo.T),
        "nc2_h": _etf_distance(centred_means @ centred_means.T),
        "nc3": _etf_distance(W_geo @ centred_means.T),
        "nc4": nc4,
        "wmu_b": wmu_b,
    }


def simplex_etf(num_classes: int, dim: int | None = None, seed: int | None = None, *,
                dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A (K, d) simplex ETF: unit-norm rows with pairwise inner products -1/(K-1), rows sum 0.

    ``dim`` defaults to K (the rows are then sqrt(K/(K-1)) (e_k - 1/K)); any d >= K-1 works.
    With ``seed=None`` the frame lies in the first coordinates (deterministic); with a seed it
    is rotated by a random orthogonal map (QR of a Gaussian matrix, as the ETF-classifier
    codes do).
    """
    if num_classes < 2:
        raise ValueError(f"a simplex ETF needs K >= 2, got {num_classes}")
    dim = num_classes if dim is None else int(dim)
    if dim < num_classes - 1:
        raise ValueError(f"a K={num_classes} simplex ETF needs dim >= {num_classes - 1}, got {dim}")
    centred = torch.eye(num_classes, dtype=dtype) - 1.0 / num_classes
    frame = math.sqrt(num_classes / (num_classes - 1)) * centred  # (K, K), rank K-1
    if dim < num_classes:  # express the rows in an orthonormal basis of 1^perp
        ones = torch.ones(num_classes, 1, dtype=dtype)
        frame = frame @ torch.linalg.qr(ones, mode="complete")[0][:, 1:]
    frame = torch.cat([frame, frame.new_zeros(num_classes, dim - frame.shape[1])], dim=1)
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
        rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=gen, dtype=dtype))
        frame = frame @ rotation.T
    return frame
