"""Closed forms of the rooted logistic objective against finite differences and naive formulas."""

import numpy as np
import pytest

from companion.theory import rooted

Z = np.linspace(-8, 8, 161)
KS = [0.5, 1.0, 2.0, 3.0, 7.0, 50.0]


def central(f, z, h=1e-5):
    return (f(z + h) - f(z - h)) / (2 * h)


@pytest.mark.parametrize("k", KS)
def test_slope_and_curvature_match_finite_differences(k):
    # differentiate l_k - k written with expm1, so the constant k does not eat the digits
    shifted = lambda x: k * np.expm1(np.logaddexp(0.0, -x) / k)  # noqa: E731
    np.testing.assert_allclose(rooted.rooted_slope(Z, k), central(shifted, Z), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(rooted.rooted_curvature(Z, k), central(lambda x: rooted.rooted_slope(x, k), Z), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("k", KS)
def test_loss_and_ratio_match_naive_formulas(k):
    u = np.exp(-Z)
    np.testing.assert_allclose(rooted.rooted_loss(Z, k), k * (1 + u) ** (1 / k), rtol=1e-13)
    naive_logistic_curv = u / (1 + u) ** 2
    np.testing.assert_allclose(rooted.curvature_ratio(Z, k), rooted.rooted_curvature(Z, k) / naive_logistic_curv, rtol=1e-10)


def test_logistic_helpers():
    np.testing.assert_allclose(rooted.logistic_loss(Z), np.log1p(np.exp(-Z)), rtol=1e-13)
    assert np.isfinite(rooted.rooted_loss(-1000.0, 50.0)) or rooted.rooted_loss(-1000.0, 50.0) == np.inf
    assert rooted.logistic_loss(-1000.0) == pytest.approx(1000.0)


def test_gradient_weights():
    p = np.array([0.01, 0.5, 0.9])
    np.testing.assert_allclose(rooted.weight_convex(p, 3.0), p ** (-1 / 3))
    np.testing.assert_allclose(rooted.weight_gce(p, 3.0, 6.0), 2.0 * p ** (1 / 3))


# -- linear models ------------------------------------------------------------------------------

import torch  # noqa: E402

from companion import losses  # noqa: E402

LINEAR_KS = [None, 0.5, 1.0, 3.0, 20.0]


def _data(n=60, d=4, seed=0, shift=0.3):
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n)
    X = rng.normal(size=(n, d)) + shift * y[:, None]  # overlapping classes: not separable
    return X, y


def _torch_objective(w, X, y, k):
    """The companion's multi-class losses on two logits (s, 0): an independent implementation."""
    scores = torch.as_tensor(X) @ w
    logits = torch.stack([scores, torch.zeros_like(scores)], dim=1)
    targets = torch.as_tensor((y < 0).astype(np.int64))  # y=+1 -> class 0: margin y w^T x
    loss = losses.get("ce") if k is None else losses.get("rooted", k=k)
    return loss(logits, targets)


@pytest.mark.parametrize("k", LINEAR_KS)
def test_linear_objective_gradient_hessian_match_autograd(k):
    X, y = _data()
    w = np.random.default_rng(1).normal(size=X.shape[1]) * 2.0  # misclassifies many points
    wt = torch.tensor(w, requires_grad=True)
    value = _torch_objective(wt, X, y, k)
    (grad,) = torch.autograd.grad(value, wt)
    hess = torch.autograd.functional.hessian(lambda v: _torch_objective(v, X, y, k), wt.detach())
    assert rooted.objective(w, X, y, k) == pytest.approx(value.item(), rel=1e-12)
    np.testing.assert_allclose(rooted.gradient(w, X, y, k), grad.numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(rooted.hessian(w, X, y, k), hess.numpy(), rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("k", [None, 2.0])
def test_l2_term_matches_finite_differences(k):
    X, y = _data()
    w, l2, h = np.array([0.3, -0.2, 0.5, 0.1]), 0.7, 1e-6
    fd = np.array([(rooted.objective(w + h * e, X, y, k, l2) - rooted.objective(w - h * e, X, y, k, l2)) / (2 * h)
                   for e in np.eye(4)])
    np.testing.assert_allclose(rooted.gradient(w, X, y, k, l2), fd, rtol=1e-7)
    fd_h = np.array([(rooted.gradient(w + h * e, X, y, k, l2) - rooted.gradient(w - h * e, X, y, k, l2)) / (2 * h)
                     for e in np.eye(4)])
    np.testing.assert_allclose(rooted.hessian(w, X, y, k, l2), fd_h, rtol=1e-6, atol=1e-9)


def test_rooted_hessian_dominates_logistic_at_random_points():
    X, y = _data(d=5)
    rng = np.random.default_rng(2)
    for scale in (0.1, 1.0, 5.0):
        w = rng.normal(size=5) * scale
        for k in (0.5, 1.0, 3.0, 50.0):
            diff = rooted.hessian(w, X, y, k) - rooted.hessian(w, X, y)
            assert np.linalg.eigvalsh(diff).min() >= -1e-12


def test_logistic_minimizer_matches_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    X, y = _data(n=200, d=3)
    w = rooted.minimize(X, y).x
    reference = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y).coef_[0]
    np.testing.assert_allclose(w, reference, rtol=1e-5)
    l2 = 0.05
    w_l2 = rooted.minimize(X, y, l2=l2).x
    ref_l2 = LogisticRegression(C=1.0 / (len(y) * l2), fit_intercept=False, tol=1e-12, max_iter=10_000).fit(X, y).coef_[0]
    np.testing.assert_allclose(w_l2, ref_l2, rtol=1e-5)


@pytest.mark.parametrize("k", [0.5, 1.0, 4.0])
def test_rooted_minimizer_is_stationary_and_matches_lbfgs(k):
    X, y = _data(n=200, d=3)
    result = rooted.minimize(X, y, k)
    assert result.success and np.linalg.norm(rooted.gradient(result.x, X, y, k)) < 1e-9
    lbfgs = rooted.minimize(X, y, k, method="L-BFGS-B", gtol=1e-12, max_iter=10_000)
    np.testing.assert_allclose(result.x, lbfgs.x, rtol=1e-5)


def _separable(n=40, d=3, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sign(X @ np.array([1.0, -2.0, 0.5]))
    X += 0.3 * y[:, None] * np.array([1.0, -2.0, 0.5]) / np.sqrt(5.25)  # open a margin
    return X, y


def test_max_margin_matches_a_generic_qp_and_kkt():
    from scipy.optimize import minimize as scipy_minimize

    X, y = _separable()
    w = rooted.max_margin(X, y)
    cons = {"type": "ineq", "fun": lambda v: y * (X @ v) - 1, "jac": lambda v: y[:, None] * X}
    qp = scipy_minimize(lambda v: v @ v, np.ones(3) * 10, jac=lambda v: 2 * v, constraints=[cons],
                        method="SLSQP", options={"ftol": 1e-14, "maxiter": 500})
    np.testing.assert_allclose(w, qp.x, rtol=1e-6)
    z = rooted.margins(w, X, y)
    assert z.min() == pytest.approx(1.0, abs=1e-9)
    # KKT: w is a non-negative combination of the support vectors' y_i x_i
    support = z < 1 + 1e-7
    alpha, *_ = np.linalg.lstsq((y[support, None] * X[support]).T, w, rcond=None)
    assert (alpha > -1e-8).all()
    assert rooted.normalized_margin(w, X, y) == pytest.approx(1 / np.linalg.norm(w))


def test_max_margin_rejects_non_separable_data():
    X, y = _data()
    with pytest.raises(ValueError, match="not linearly separable"):
        rooted.max_margin(X, y)


def test_angle_degrees():
    assert rooted.angle_degrees([1.0, 0.0], [0.0, 2.0]) == pytest.approx(90.0)
    np.testing.assert_allclose(rooted.angle_degrees(np.array([[1.0, 1.0], [3.0, 0.0]]), [1.0, 0.0]), [45.0, 0.0])


def test_gradient_descent_matches_a_plain_loop_and_reports_hits():
    X, y = _separable()
    ks, steps = (None, 1.0, 3.0), np.array([0.5, 0.5, 0.2])
    trace = rooted.gradient_descent(X, y, ks, steps, iterations=30, record=(0, 7, 30))
    for j, (k, step) in enumerate(zip(ks, steps)):
        w = np.zeros(3)
        for t in range(30):
            if t == 7:
                np.testing.assert_allclose(trace.weights[1, j], w, rtol=1e-12)
            assert trace.objective[t, j] == pytest.approx(rooted.objective(w, X, y, k), rel=1e-12)
            assert trace.errors[t, j] == int((rooted.margins(w, X, y) <= 0).sum())
            w = w - step * rooted.gradient(w, X, y, k)
        np.testing.assert_allclose(trace.weights[2, j], w, rtol=1e-12)
    hits = trace.iterations_to_zero_error()
    expected = [int(np.argmax(trace.errors[:, j] == 0)) for j in range(3)]
    np.testing.assert_array_equal(hits, expected)
    assert (hits > 0).all()


def test_minibatch_of_full_size_is_gradient_descent_and_divergence_is_flagged():
    X, y = _data()
    full = rooted.gradient_descent(X, y, (None, 2.0), 0.3, iterations=20)
    mini = rooted.gradient_descent(X, y, (None, 2.0), 0.3, iterations=20, batch_size=len(y))
    np.testing.assert_allclose(full.objective, mini.objective, rtol=1e-12)
    small = rooted.gradient_descent(X, y, (None, 2.0), 0.3, iterations=20, batch_size=8, seed=1)
    assert not np.allclose(small.objective, full.objective)
    w_star = rooted.minimize(X, y, 0.5).x
    blown = rooted.gradient_descent(X, y, (0.5, 0.5), np.array([0.1, 1e4]), iterations=50)
    gaps = blown.iterations_to_gap([rooted.objective(w_star, X, y, 0.5)] * 2, 1e-3)
    assert gaps[0] > 0 and gaps[1] == -1
    assert blown.errors[-1, 1] > 0


@pytest.mark.parametrize("k", KS)
def test_log_curvature_matches_direct_form_and_stays_finite(k):
    np.testing.assert_allclose(np.exp(rooted.log_rooted_curvature(Z, k)), rooted.rooted_curvature(Z, k), rtol=1e-12)
    far = np.array([-3000.0, 3000.0])
    # asymptotes: -z/k - log k on the wrong side, -z on the right side
    np.testing.assert_allclose(rooted.log_rooted_curvature(far, k), [3000.0 / k - np.log(k), -3000.0], rtol=1e-12)
    np.testing.assert_allclose(rooted.log_rooted_curvature(Z, np.inf), np.log(rooted.logistic_curvature(Z)), rtol=1e-12)


def _hard_separable(n=100, d=5, seed=4):
    """Anisotropic inputs, labels by a direction the class means do not reveal, a thin margin."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4 * n, d)) * np.logspace(0, -1, d)
    score = X @ np.array([0.2, -0.3, 1.0, 2.0, -3.0])
    keep = np.abs(score) > 0.05
    return X[keep][:n], np.sign(score[keep][:n])


def test_early_stop_keeps_the_hits_and_truncates():
    X, y = _hard_separable()
    full = rooted.gradient_descent(X, y, (None, 2.0), 2.0, iterations=2000)
    early = rooted.gradient_descent(X, y, (None, 2.0), 2.0, iterations=2000, record=(5, 1999),
                                    stop_when=lambda objective, errors: errors == 0)
    np.testing.assert_array_equal(early.iterations_to_zero_error(), full.iterations_to_zero_error())
    assert 5 < full.iterations_to_zero_error().min() and full.iterations_to_zero_error().max() < 2000
    assert len(early.errors) == full.iterations_to_zero_error().max() + 1
    np.testing.assert_allclose(early.objective, full.objective[:len(early.objective)], rtol=0)
    np.testing.assert_array_equal(early.record, [5])
    np.testing.assert_allclose(early.weights[0], rooted.gradient_descent(X, y, (None, 2.0), 2.0, 5, record=(5,)).weights[0])


@pytest.mark.parametrize("k", [None, 0.5, 3.0])
def test_shifted_objective_used_by_minimize(k):
    X, y = _data()
    w = np.random.default_rng(5).normal(size=X.shape[1])
    value, grad = rooted._objective_minus_k(w, X, y, k, 0.3)
    shift = 0.0 if k is None else k
    assert value == pytest.approx(rooted.objective(w, X, y, k, 0.3) - shift, rel=1e-12)
    np.testing.assert_allclose(grad, rooted.gradient(w, X, y, k, 0.3), rtol=1e-12)
