"""Closed forms of the NC optimum (companion.theory.nc) against independent computations:
the companion's torch losses, finite differences, brute-force 1-D minimization with scipy,
autograd gradients and dense Hessians of the UFM objective written out here."""

import math

import numpy as np
import pytest
import torch
from scipy import optimize

from companion import losses
from companion.theory import nc

CASES = [("ce", {}), ("ls", {"alpha": 0.1}), ("ls", {"alpha": 0.3}), ("focal", {"gamma": 1.0}),
         ("focal", {"gamma": 3.0}), ("mse", {"scale": 1.0}), ("mse", {"scale": 15.0})]
SOFTMAX_CASES = [c for c in CASES if c[0] != "mse"]
T = np.linspace(-6, 12, 181)


def torch_loss(loss, params, logits, labels):
    """Mean loss of the companion's torch implementation, float64."""
    fn = losses.get(loss, **params)
    return fn(torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels))


def loss_at_margin(loss, params, t, k, bias=0.0):
    """Per-sample torch loss at logits t (e_0 - 1/K) + bias."""
    logits = np.full(k, -t / k) + bias
    logits[0] += t
    return float(torch_loss(loss, params, logits[None], [0]))


def ufm_objective(loss, params, w, h, b, per_class, lw, lh, lb):
    """f(W, H, b) of the UFM, written out independently of companion.ufm (torch tensors)."""
    k = w.shape[0]
    labels = torch.arange(k).repeat_interleave(per_class)
    logits = (w @ h).T + b
    fit = losses.get(loss, **params)(logits, labels)
    return fit + lw / 2 * w.pow(2).sum() + lh / 2 * h.pow(2).sum() + lb / 2 * b.pow(2).sum()


def etf(k, d):
    """K x d simplex ETF with unit rows: the centred identity embedded in the first K coordinates."""
    m = np.zeros((k, d))
    m[:, :k] = np.eye(k) - 1.0 / k
    return m / np.linalg.norm(m, axis=1, keepdims=True)


@pytest.mark.parametrize("loss,params", CASES)
@pytest.mark.parametrize("k", [3, 10])
def test_margin_loss_matches_companion_losses(loss, params, k):
    ours = nc.margin_loss(loss, T, k, **params)
    if loss == "mse":  # the zero-mean part: the loss at bias M/K, where the mean term vanishes
        ref = [loss_at_margin(loss, params, t, k, bias=params["scale"] / k) for t in T]
    else:
        ref = [loss_at_margin(loss, params, t, k) for t in T]
    np.testing.assert_allclose(ours, ref, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("loss,params", CASES)
def test_slope_and_curvature_match_finite_differences(loss, params):
    k, h = 10, 1e-5
    fd_slope = (nc.margin_loss(loss, T + h, k, **params) - nc.margin_loss(loss, T - h, k, **params)) / (2 * h)
    fd_curv = (nc.margin_loss_slope(loss, T + h, k, **params) - nc.margin_loss_slope(loss, T - h, k, **params)) / (2 * h)
    np.testing.assert_allclose(nc.margin_loss_slope(loss, T, k, **params), fd_slope, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(nc.margin_loss_curvature(loss, T, k, **params), fd_curv, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("loss,params", SOFTMAX_CASES)
@pytest.mark.parametrize("k", [3, 10, 100])
def test_lower_bound_holds_and_is_tight(loss, params, k):
    rng = np.random.default_rng(k)
    logits = rng.normal(scale=3.0, size=(500, k))
    labels = rng.integers(0, k, size=500)
    per_sample = losses.get(loss, reduction="none", **params)(torch.tensor(logits), torch.tensor(labels)).numpy()
    phi = nc.lower_bound(loss, nc.margin_sum(logits, labels), k, **params)
    assert (per_sample - phi).min() >= -1e-12
    assert (per_sample - phi).max() > 1e-3  # random logits are not all tight
    # equal non-target logits: equality
    equal = np.repeat(rng.normal(size=(500, 1)), k, axis=1)
    equal[np.arange(500), labels] += rng.normal(scale=4.0, size=500)
    per_sample = losses.get(loss, reduction="none", **params)(torch.tensor(equal), torch.tensor(labels)).numpy()
    np.testing.assert_allclose(nc.lower_bound(loss, nc.margin_sum(equal, labels), k, **params), per_sample,
                               rtol=1e-12, atol=1e-14)


def test_margin_sum():
    z = np.array([[1.0, 2.0, 4.0]])
    assert nc.margin_sum(z, [0])[0] == pytest.approx((2 - 1) + (4 - 1))


def brute_force_margin(loss, params, k, reg):
    """argmin_{t in [0, 40]} of the scalar problem from the torch loss: grid, then scipy refine."""
    bias = params.get("scale", 0.0) / k if loss == "mse" else 0.0

    def objective(t):
        return loss_at_margin(loss, params, t, k, bias=bias) + (k - 1) * reg * t

    grid = np.linspace(0, 40, 801)
    i = int(np.argmin([objective(t) for t in grid]))
    if i == 0:
        return 0.0
    res = optimize.minimize_scalar(objective, bounds=(grid[i - 1], grid[i + 1]), method="bounded",
                                   options={"xatol": 1e-10})
    return res.x


@pytest.mark.parametrize("loss,params", CASES)
@pytest.mark.parametrize("reg", [1e-4, 3e-3, 0.0158, 0.06])
def test_optimal_margin_matches_brute_force(loss, params, reg):
    k = 10
    expected = brute_force_margin(loss, params, k, reg)
    assert nc.optimal_margin(loss, k, reg, **params) == pytest.approx(expected, abs=1e-6)


def test_closed_form_margins():
    k, reg = 10, 0.0158
    assert nc.optimal_margin("ce", k, reg) == pytest.approx(math.log(1 / reg - (k - 1)), rel=1e-14)
    assert nc.optimal_margin("ls", k, reg, alpha=0.1) == pytest.approx(math.log(1 / (reg + 0.01) - (k - 1)), rel=1e-14)
    assert nc.optimal_margin("mse", k, reg, scale=15.0) == pytest.approx(15 - k**2 * reg / 2, rel=1e-14)
    assert nc.optimal_margin("ce", k, 0.0) == math.inf
    assert nc.optimal_margin("ls", k, 0.0, alpha=0.1) == pytest.approx(math.log(k / 0.1 - (k - 1)))


@pytest.mark.parametrize("loss,params", CASES)
@pytest.mark.parametrize("k", [10, 100])
def test_trivial_threshold_is_where_the_margin_vanishes(loss, params, k):
    gamma0 = nc.trivial_threshold(loss, k, **params)
    # brute force: the sup over t of the secant (l(0) - l(t)) / ((K-1) t) on a fine grid
    t = np.linspace(1e-6, 30, 300001)
    l = nc.margin_loss(loss, t, k, **params)
    secant = (float(nc.margin_loss(loss, 0.0, k, **params)) - l) / ((k - 1) * t)
    assert gamma0 == pytest.approx(secant.max(), rel=1e-6)
    assert nc.optimal_margin(loss, k, gamma0 * (1 - 1e-3), **params) > 0
    assert nc.optimal_margin(loss, k, gamma0 * (1 + 1e-3), **params) == 0.0


def test_thresholds_closed_forms_and_the_focal_gap():
    k = 10
    assert nc.trivial_threshold("ce", k) == pytest.approx(1 / k)
    assert nc.trivial_threshold("ls", k, alpha=0.2) == pytest.approx(0.8 / k)
    assert nc.trivial_threshold("mse", k, scale=15.0) == pytest.approx(2 * 15 / k**2)
    beta = 3.0
    focal_slope = ((1 - 1 / k) ** beta + beta / k * (1 - 1 / k) ** (beta - 1) * math.log(k)) / k
    assert nc.saddle_threshold("focal", k, gamma=beta) == pytest.approx(focal_slope, rel=1e-12)
    # with many classes l_FL is concave near 0: the origin stays a local minimum above gamma_s
    assert nc.trivial_threshold("focal", 100, gamma=beta) > 1.05 * nc.saddle_threshold("focal", 100, gamma=beta)
    assert nc.trivial_threshold("focal", 10, gamma=beta) == pytest.approx(nc.saddle_threshold("focal", 10, gamma=beta))


@pytest.mark.parametrize("loss,params", CASES)
@pytest.mark.parametrize("lambda_b", [0.0, 5e-3])
def test_optimum_is_a_critical_point_with_the_predicted_value(loss, params, lambda_b):
    k, n, d, lw, lh = 6, 4, 8, 5e-3, 2e-3
    opt = nc.optimum(loss, k, n, lw, lh, lambda_b, **params)
    assert not opt.trivial
    w, h, b = (torch.tensor(a, requires_grad=True) for a in nc.nc_solution(opt, etf(k, d)))
    value = ufm_objective(loss, params, w, h, b, n, lw, lh, lambda_b)
    grads = torch.autograd.grad(value, (w, h, b))
    value = float(value.detach())
    assert value == pytest.approx(opt.objective, rel=1e-12)
    assert max(float(g.abs().max()) for g in grads) < 1e-12
    # norms and ratios as stated
    w, h = w.detach(), h.detach()
    assert float(w.pow(2).sum(1).mean()) == pytest.approx(opt.w_norm_sq, rel=1e-12)
    assert float(h.pow(2).sum(0).mean()) == pytest.approx(opt.h_norm_sq, rel=1e-12)
    assert opt.h_norm_sq / opt.w_norm_sq == pytest.approx(lw / (n * lh), rel=1e-12)
    margins = (w @ h).T.numpy()
    labels = np.repeat(np.arange(k), n)
    top = margins[np.arange(k * n), labels]
    assert np.allclose(top - np.sort(margins, axis=1)[:, -2], opt.margin, rtol=1e-12)
    # a local minimum: random perturbations never decrease the objective
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for _ in range(20):
            moved = [a.detach() + 1e-3 * torch.tensor(rng.normal(size=a.shape)) for a in (w, h, b)]
            assert float(ufm_objective(loss, params, *moved, n, lw, lh, lambda_b)) > value - 1e-14


def test_mse_bias_and_softmax_bias():
    assert nc.optimal_bias("mse", 10, 0.0, scale=15.0) == pytest.approx(1.5)
    assert nc.optimal_bias("mse", 10, 0.01, scale=1.0) == pytest.approx(0.1 / 1.05)
    assert nc.optimal_bias("ce", 10, 0.01) == 0.0


@pytest.mark.parametrize("loss,params", CASES)
def test_trivial_optimum_value(loss, params):
    k, n = 10, 10
    lam = 2 * nc.trivial_threshold(loss, k, **params) / math.sqrt(n)  # gamma = 2 gamma_0
    opt = nc.optimum(loss, k, n, lam, lam, **params)
    assert opt.trivial and opt.w_norm_sq == 0 and opt.h_norm_sq == 0
    if loss == "ce":
        assert opt.objective == pytest.approx(math.log(k))
    zero = torch.zeros((k, 3), dtype=torch.float64)
    value = ufm_objective(loss, params, zero, torch.zeros((3, k * n), dtype=torch.float64),
                          torch.full((k,), opt.bias, dtype=torch.float64), n, lam, lam, 0.0)
    assert float(value) == pytest.approx(opt.objective, rel=1e-12)


@pytest.mark.parametrize("loss,params", CASES)
@pytest.mark.parametrize("lw,lh", [(1e-3, 2e-3), (0.05, 0.01)])
def test_origin_hessian_matches_dense_hessian(loss, params, lw, lh):
    k, n, d = 4, 3, 5
    b = torch.full((k,), nc.optimal_bias(loss, k, 0.0, **params), dtype=torch.float64)

    def f(flat):
        w, h = flat[: k * d].reshape(k, d), flat[k * d:].reshape(d, k * n)
        return ufm_objective(loss, params, w, h, b, n, lw, lh, 0.0)

    hess = torch.autograd.functional.hessian(f, torch.zeros(k * d + d * k * n, dtype=torch.float64))
    smallest = float(torch.linalg.eigvalsh(hess)[0])
    assert nc.origin_hessian_min_eigenvalue(loss, k, n, lw, lh, **params) == pytest.approx(smallest, rel=1e-10)
    gamma = nc.regularization_strength(n, lw, lh)
    assert (smallest < 0) == (gamma < nc.saddle_threshold(loss, k, **params))


@pytest.mark.parametrize("k,d", [(10, 5), (10, 2), (6, 4)])
def test_nc2_lower_bound(k, d):
    bound = nc.nc2_lower_bound(k, d)
    target = (np.eye(k) - 1 / k) / math.sqrt(k - 1)
    rng = np.random.default_rng(d)
    for _ in range(200):
        w = rng.normal(size=(k, d))
        gram = w @ w.T
        assert np.linalg.norm(gram / np.linalg.norm(gram) - target) >= bound - 1e-12
    # attained by a rank-d projection inside 1^perp
    basis = np.linalg.qr(np.eye(k) - 1 / k)[0][:, : d]
    proj = basis @ basis.T
    assert np.linalg.norm(proj / np.linalg.norm(proj) - target) == pytest.approx(bound, rel=1e-10)
    assert nc.nc2_lower_bound(10, 9) == 0.0


def test_errors():
    with pytest.raises(ValueError):
        nc.margin_loss("hinge", 1.0, 10)
    with pytest.raises(ValueError):
        nc.margin_loss("ce", 1.0, 10, alpha=0.1)
    with pytest.raises(ValueError):
        nc.lower_bound("mse", 1.0, 10)
