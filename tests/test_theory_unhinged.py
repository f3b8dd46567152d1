"""Closed forms of the unhinged-loss paper against dense expm, simulated GD and autograd."""

import numpy as np
import pytest
import torch

from companion import losses
from companion.theory import unhinged as U

C, N, P = 5, 3, 6


def init(seed=0, c=C, n=N, p=P):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((p, c * n)), rng.standard_normal((c, p)), rng.standard_normal(c)


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# -- the model ------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [0.05, 0.25, 0.9])
def test_descent_directions_match_autograd_of_companion_loss(gamma):
    H, W, b = init(1)
    Ht = torch.tensor(H, requires_grad=True)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    y = torch.tensor(U.labels(C, N))
    loss = losses.get("unhinged", gamma=gamma)((Wt @ Ht + bt[:, None]).T, y)
    loss.backward()
    np.testing.assert_allclose(-Ht.grad.numpy(), U.descent_H(W, N, gamma), atol=1e-14)
    np.testing.assert_allclose(-Wt.grad.numpy(), U.descent_W(H, C, gamma), atol=1e-14)
    np.testing.assert_allclose(-bt.grad.numpy(), np.full(C, U.bias_drift(C, gamma)), atol=1e-14)
    assert U.objective(H, W, gamma, b) == pytest.approx(loss.item(), rel=1e-12)
    # the dense M of the paper gives the same directions: -grad_H = W^T M, -grad_W = (H M^T)^T
    M = U.M_matrix(C, N, gamma)
    np.testing.assert_allclose(W.T @ M, U.descent_H(W, N, gamma), atol=1e-14)
    np.testing.assert_allclose((H @ M.T).T, U.descent_W(H, C, gamma), atol=1e-14)


def test_projections_are_an_orthogonal_decomposition_into_eigenspaces():
    gamma = 0.3
    H, W, _ = init(2)
    parts = U.project(H, W)
    np.testing.assert_allclose(sum(parts[k][0] for k in U.SPACES), H, atol=1e-13)
    np.testing.assert_allclose(sum(parts[k][1] for k in U.SPACES), W, atol=1e-13)
    flat = {k: np.concatenate([h.ravel(), w.ravel()]) for k, (h, w) in parts.items()}
    for i, a in enumerate(U.SPACES):
        for b in U.SPACES[i + 1:]:
            assert abs(flat[a] @ flat[b]) < 1e-12 * np.linalg.norm(flat[a]) * np.linalg.norm(flat[b]) + 1e-14
        again = U.project(*parts[a])[a]  # idempotent
        np.testing.assert_allclose(np.concatenate([again[0].ravel(), again[1].ravel()]), flat[a], atol=1e-13)
    # (W^T M, (H M^T)^T) = sigma (H, W) on each space (Lemma 9)
    for k, sigma in U.eigenvalues(C, N, gamma).items():
        h, w = parts[k]
        np.testing.assert_allclose(U.descent_H(w, N, gamma), sigma * h, atol=1e-13)
        np.testing.assert_allclose(U.descent_W(h, C, gamma), sigma * w, atol=1e-13)


def test_eigenvalues_match_the_spectrum_of_B():
    gamma = 0.2
    K = U.flow_generator(C, N, gamma)  # s = 1, no decay: K = B
    spectrum = np.sort(np.linalg.eigvals(K).real)
    ev = U.eigenvalues(C, N, gamma)
    expected = np.sort([ev["E1+"]] * (C - 1) + [ev["E1-"]] * (C - 1) + [ev["E2+"], ev["E2-"]] + [0.0] * (C * (N - 1)))
    np.testing.assert_allclose(spectrum, expected, atol=1e-12)


# -- Theorems 2 and 4: flow and exact discrete GD -------------------------------------------

CASES = [  # gamma, s, lambda_h, lambda_w
    (0.25, 1.0, 0.0, 0.0), (0.05, 0.3, 0.0, 0.0), (0.9, 2.0, 0.0, 0.0),
    (0.05, 0.5, 0.01, 0.03), (0.25, 1.0, 0.2, 0.2), (0.25, 3.0, 0.0, 0.1),
]


@pytest.mark.parametrize("gamma,s,lh,lw", CASES)
def test_closed_form_flow_matches_dense_expm(gamma, s, lh, lw):
    H0, W0, _ = init(3)
    modes = U.Modes.of(H0, W0, gamma)
    for zeta in (0.0, 3.0, 40.0):
        H, W = modes.evolve(zeta, s, lh, lw)
        Hr, Wr = U.dense_flow(H0, W0, gamma, zeta, s, lh, lw)
        assert rel(np.hstack([H, W.T]), np.hstack([Hr, Wr.T])) < 1e-11


@pytest.mark.parametrize("gamma,s,lh,lw", CASES)
@pytest.mark.parametrize("kind", ["constant", "cosine", "step"])
def test_exact_discrete_solution_matches_simulated_gd(gamma, s, lh, lw, kind):
    H0, W0, _ = init(4)
    lrs = 0.2 * U.schedule(kind, 300)
    H, W = U.Modes.of(H0, W0, gamma).evolve_discrete(lrs, s, lh, lw)
    Hg, Wg = U.gradient_descent(H0, W0, gamma, lrs, s, lh, lw)
    Hd, Wd = U.dense_discrete(H0, W0, gamma, lrs, s, lh, lw)
    assert rel(np.hstack([H, W.T]), np.hstack([Hg, Wg.T])) < 1e-11
    assert rel(np.hstack([Hd, Wd.T]), np.hstack([Hg, Wg.T])) < 1e-11


def test_gd_approaches_the_flow_at_first_order_in_the_step():
    gamma, s = 0.25, 0.5
    H0, W0, _ = init(5)
    Hf, Wf = U.dense_flow(H0, W0, gamma, 20.0, s)
    errors = []
    for lr in (0.1, 0.05, 0.025):
        lrs = np.full(int(round(20.0 / lr)), lr)
        Hg, Wg = U.gradient_descent(H0, W0, gamma, lrs, s)
        errors.append(rel(np.hstack([Hg, Wg.T]), np.hstack([Hf, Wf.T])))
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)  # O(step)


def test_theorem2_printed_scalars_equal_the_expm_route():
    H0, W0, _ = init(6)
    for s in (0.3, 1.0, 2.5):
        modes = U.Modes.of(H0, W0, 0.1)
        for k, sigma in modes.sigma.items():
            a, b = modes.scalars(7.0, s)[k]
            if k == "E3":
                assert a == pytest.approx(1.0)
                continue
            np.testing.assert_allclose((a, b), U.theorem2_scalars(sigma, s, 7.0), rtol=1e-12)


def test_time_varying_rates_only_enter_through_zeta():
    # Theorem 2: with eta_H = s eta_W, any schedule with the same integral gives the same flow;
    # the exact discrete solution of a fine cosine schedule approaches the flow at zeta = sum(lrs)
    gamma, s = 0.1, 2.0
    H0, W0, _ = init(7)
    lrs = 0.01 * U.schedule("cosine", 4000)
    Hd, Wd = U.Modes.of(H0, W0, gamma).evolve_discrete(lrs, s)
    Hf, Wf = U.Modes.of(H0, W0, gamma).evolve(lrs.sum(), s)
    assert rel(np.hstack([Hd, Wd.T]), np.hstack([Hf, Wf.T])) < 1e-2


def test_bias_formulas():
    gamma = 0.3
    _, _, b0 = init(8)
    lrs = 0.1 * U.schedule("cosine", 500)
    for lam in (0.0, 0.05):
        b = b0.copy()
        for lr in lrs:
            b = b + lr * (U.bias_drift(C, gamma) - lam * b)
        np.testing.assert_allclose(U.bias_discrete(b0, C, gamma, lrs, lam), b, rtol=1e-12)
        # flow: compare with the expm of the affine system d(b,1)/dzeta = [[-lam, g], [0, 0]] (b,1)
        g = U.bias_drift(C, gamma)
        from scipy.linalg import expm
        E = expm(10.0 * np.array([[-lam, g], [0.0, 0.0]]))
        np.testing.assert_allclose(U.bias_flow(b0, C, gamma, 10.0, lam), E[0, 0] * b0 + E[0, 1], rtol=1e-12)


# -- Corollaries 3 and 5 --------------------------------------------------------------------


@pytest.mark.parametrize("s", [0.3, 1.0, 2.0])
def test_corollary3_zbar_is_the_dominant_direction(s):
    gamma = 0.1  # < 2/(C-2)
    H0, W0, _ = init(9)
    modes = U.Modes.of(H0, W0, gamma)
    Hl, Wl, mu = modes.limit(s)
    Hb, Wb = U.corollary3_zbar(modes, s)
    assert mu == pytest.approx(np.sqrt(s) * U.sigma_1(C, N, gamma), rel=1e-12)
    assert U.direction_error(Hl, Wl, Hb, Wb) < 1e-12
    if s == 1.0:
        assert U.direction_error(Hl, Wl, *modes.parts["E1+"]) < 1e-12
    # the flow's direction error decays at the predicted rate
    rate = U.direction_rate(C, N, gamma, s)
    z1, z2 = 200.0, 400.0
    e1, e2 = (U.direction_error(*modes.evolve(z, s), Hb, Wb) for z in (z1, z2))
    assert (np.log(e1) - np.log(e2)) / (z2 - z1) == pytest.approx(rate, rel=0.02)


@pytest.mark.parametrize("gamma", [0.01, 0.25, 0.5, 0.9])
def test_direction_rate_is_corollary3_exponent(gamma):
    for s in (0.5, 1.0, 4.0):
        expected = -U.corollary3_exponent(C, gamma) * np.sqrt(s) / (C * np.sqrt(N))
        assert U.direction_rate(C, N, gamma, s) == pytest.approx(expected, rel=1e-10)


def test_beyond_the_gamma_bound_the_direction_leaves_zbar_for_sqrt2():
    gamma = 1.0  # > 2/(C-2) = 2/3
    H0, W0, _ = init(10)
    modes = U.Modes.of(H0, W0, gamma)
    zbar = modes.parts["E1+"]
    err = U.direction_error(*modes.evolve(150.0), *zbar)  # E2 leads by exp(-0.115 zeta)
    assert err == pytest.approx(np.sqrt(2), abs=1e-6)
    assert U.direction_rate(C, N, gamma) < 0


@pytest.mark.parametrize("s", [0.5, 1.0, 3.0])
def test_corollary5_limit_at_lambda_star(s):
    gamma = 0.2
    lam = U.lambda_star(C, N, gamma)
    H0, W0, _ = init(11)
    modes = U.Modes.of(H0, W0, gamma)
    Hl, Wl, mu = modes.limit(s, lam, lam)
    assert abs(mu) < 1e-14
    Hc, Wc = U.corollary5_limit(modes, s)
    assert rel(np.hstack([Hl, Wl.T]), np.hstack([Hc, Wc.T])) < 1e-12
    H, W = U.dense_flow(H0, W0, gamma, 40.0 / lam, s, lam, lam)
    assert rel(np.hstack([H, W.T]), np.hstack([Hc, Wc.T])) < 1e-8
    for factor, sign in ((0.5, 1), (1.0, 0), (2.0, -1)):
        g = U.mode_growth(U.sigma_1(C, N, gamma), s, factor * lam, factor * lam)
        assert np.sign(np.round(g, 14)) == sign
        assert g == pytest.approx(U.corollary5_omega(U.sigma_1(C, N, gamma), s, factor * lam)[1], abs=1e-14)


def test_regularized_direction_converges_below_the_threshold():
    gamma, s = 0.2, 0.7
    lam = 0.3 * U.lambda_star(C, N, gamma)
    H0, W0, _ = init(12)
    modes = U.Modes.of(H0, W0, gamma)
    Hl, Wl, mu = modes.limit(s, lam, lam)
    assert mu > 0
    rate = U.direction_rate(C, N, gamma, s, lam, lam)
    omega = U.corollary5_omega(U.sigma_1(C, N, gamma), s, lam)[1] - U.corollary5_omega(abs(U.sigma_2(C, N, gamma)), s, lam)[1]
    assert rate == pytest.approx(omega, rel=1e-10)
    # zeta small enough that the error stays far above round-off (exp(-0.096 * 200) ~ 5e-9)
    e1, e2 = (U.direction_error(*modes.evolve(z, s, lam, lam), Hl, Wl) for z in (100.0, 200.0))
    assert (np.log(e1) - np.log(e2)) / 100.0 == pytest.approx(rate, rel=0.02)


# -- Theorem 6 ------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.01, 0.1])
def test_theorem6_anchored_solution(lam):
    gamma = 0.25
    H0, W, _ = init(13)
    W = W - W.mean(axis=0)
    lrs = 0.5 * U.schedule("cosine", 400)
    H = H0.copy()
    for lr in lrs:
        H = H + lr * (U.descent_H(W, N, gamma) - lam * H)
    np.testing.assert_allclose(U.anchored_discrete(H0, W, gamma, lam, lrs), H, rtol=1e-12, atol=1e-12)
    # flow vs dense expm of the affine system in vec(H): dH/dzeta = W^T M - lam H
    from scipy.linalg import expm
    T = U.anchored_target(W, N, gamma)
    E = expm(5.0 * np.array([[-lam, 1.0], [0.0, 0.0]]))
    np.testing.assert_allclose(U.anchored_flow(H0, W, gamma, lam, 5.0), E[0, 0] * H0 + E[0, 1] * T, rtol=1e-12)
    # with W 1 = 0 each feature tends to (1+gamma)/(lam C N) w_c
    if lam > 0:
        target = np.repeat(W, N, axis=0).T * (1 + gamma) / (lam * C * N)
        np.testing.assert_allclose(T / lam, target, atol=1e-13)


# -- Theorem 7 / Lemma 10 -------------------------------------------------------------------


def test_spherical_descent_matches_autograd():
    gamma = 0.25
    H, W, _ = init(14)
    W = W - W.mean(axis=0)
    Ht = torch.tensor(H, requires_grad=True)
    Wt = torch.tensor(W)
    Hn = Ht / Ht.norm(dim=0, keepdim=True)
    y = torch.tensor(U.labels(C, N))
    value = losses.get("unhinged", gamma=gamma)((Wt @ Hn).T, y)
    value.backward()
    np.testing.assert_allclose(-Ht.grad.numpy(), U.spherical_descent(H, W, gamma), atol=1e-14)
    assert U.spherical_objective(H, W, gamma) == pytest.approx(value.item(), rel=1e-12)


@pytest.mark.parametrize("rescaled", [False, True])
def test_cosine_recursion_matches_spherical_gd(rescaled):
    gamma = 0.25
    H0, W, _ = init(15)
    W = W - W.mean(axis=0)
    lrs = 3.0 * (1 + np.arange(200)) ** -0.3  # decreasing: xi != 1
    H, record = U.spherical_gd(H0, W, gamma, lrs, rescaled=rescaled)
    own = np.repeat(W, N, axis=0).T
    beta0 = np.sum(own * H0, axis=0) / (np.linalg.norm(own, axis=0) * np.linalg.norm(H0, axis=0))
    step0 = (1 + gamma) * lrs[0] / (C * N) * (np.linalg.norm(H0, axis=0) if rescaled else 1.0)
    alpha0 = step0 * np.linalg.norm(own, axis=0) / np.linalg.norm(H0, axis=0) ** 2
    xi = np.append(lrs[1:] / lrs[:-1], 1.0)  # one ratio per GD step (the last one is never used)
    betas, alphas = U.cosine_recursion(beta0, alpha0, xi, rescaled=rescaled)
    beta_gd = np.sum(own * H, axis=0) / (np.linalg.norm(own, axis=0) * np.linalg.norm(H, axis=0))
    np.testing.assert_allclose(betas[-1], beta_gd, atol=1e-12)
    norms = np.linalg.norm(H0, axis=0) * np.sqrt(np.prod(1 + alphas[:-1] ** 2 * (1 - betas[:-1] ** 2), axis=0))
    np.testing.assert_allclose(norms, np.linalg.norm(H, axis=0), rtol=1e-12)
    assert np.all(np.diff(record["norm"]) >= 0)
    assert np.all(np.diff(1 - betas, axis=0) <= 1e-15)


# -- Theorem 8 ------------------------------------------------------------------------------


def test_ntk_linear_system_matches_autograd_gd_on_linear_in_parameters_features():
    gamma, d, lr, steps = 0.25, 9, 0.05, 200
    rng = np.random.default_rng(16)
    Phi = np.tanh(rng.standard_normal((d, C * N)))
    Theta = torch.tensor(rng.standard_normal((d, P)), requires_grad=True)
    W = torch.tensor(rng.standard_normal((C, P)), requires_grad=True)
    H0 = (Theta.T @ torch.tensor(Phi)).detach().numpy()
    W0 = W.detach().numpy().copy()
    y = torch.tensor(U.labels(C, N))
    loss_fn = losses.get("unhinged", gamma=gamma)
    for _ in range(steps):
        value = loss_fn((W @ Theta.T @ torch.tensor(Phi)).T, y)
        gT, gW = torch.autograd.grad(value, (Theta, W))
        with torch.no_grad():
            Theta -= lr * gT
            W -= lr * gW
    A = U.ntk_generator(Phi.T @ Phi, C, N, gamma)
    Z = np.hstack([H0, W0.T]) @ np.linalg.matrix_power(np.eye(A.shape[0]) + lr * A, steps)
    H = (Theta.T @ torch.tensor(Phi)).detach().numpy()
    assert rel(np.hstack([H, W.detach().numpy().T]), Z) < 1e-11


# -- Lemma 1 and the erratum ----------------------------------------------------------------


@pytest.mark.parametrize("c", [4, 5, 6, 9])
def test_balanced_non_etf_prototypes_attain_lemma1_value(c):
    W = U.balanced_prototypes(c, 8, norm=2.0, rng=np.random.default_rng(c))
    np.testing.assert_allclose(W.sum(axis=0), 0, atol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), 2.0, rtol=1e-13)
    gamma = 0.5 * U.gamma_upper(c)
    assert U.lemma1_value_given_W(W, gamma, 3.0) == pytest.approx(U.lemma1_paper_value(gamma, 2.0, 3.0), rel=1e-13)
    assert np.max(np.abs(U.pairwise_cosines(W) + 1 / (c - 1))) > 0.1  # not an ETF


def brute_force_min(c, gamma, restarts=20, steps=400, seed=0):
    """Projected gradient ascent of mean_c ||(1+g) w_c - g sum w|| over unit-norm rows, batched restarts."""
    W = torch.tensor(np.random.default_rng(seed).standard_normal((restarts, c, 6)), requires_grad=True)
    for _ in range(steps):
        Wn = W / W.norm(dim=2, keepdim=True)
        value = ((1 + gamma) * Wn - gamma * Wn.sum(1, keepdim=True)).norm(dim=2).mean(1).sum()
        (g,) = torch.autograd.grad(value, W)
        with torch.no_grad():
            W += 0.5 * g
    Wn = (W / W.norm(dim=2, keepdim=True)).detach().numpy()
    return min(U.lemma1_value_given_W(w, gamma, 1.0) for w in Wn)


@pytest.mark.parametrize("c,gamma", [(5, 0.25), (5, 0.9), (4, 1.5), (3, 0.5)])
def test_lemma1_corrected_minimum_against_brute_force(c, gamma):
    found = brute_force_min(c, gamma)
    expected = U.lemma1_minimum(c, gamma, 1.0, 1.0)
    assert found >= expected - 1e-9
    assert found == pytest.approx(expected, rel=1e-4)
    if gamma * (c - 2) > 2:
        assert expected < U.lemma1_paper_value(gamma, 1.0, 1.0)


def test_schedules_and_thresholds():
    np.testing.assert_allclose(U.schedule("step", 8, milestones=(0.5, 0.75)), [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01])
    f = U.schedule("cosine", 4)
    np.testing.assert_allclose(f, 0.5 * (1 + np.cos(np.pi * np.arange(4) / 4)))
    assert U.lambda_star(100, 10, 1 / 99) == pytest.approx((1 + 1 / 99) / (100 * np.sqrt(10)))
    assert U.lambda_star(100, 10, 1 / 99) == pytest.approx(3.19e-3, rel=1e-2)
    assert U.gamma_upper(2) == np.inf and U.gamma_upper(10) == 0.25
    with pytest.raises(ValueError):
        U.schedule("linear", 3)


def test_trajectory_helpers_match_formed_matrices():
    gamma, s, lam = 0.2, 0.6, 0.05
    H0, W0, _ = init(17)
    modes = U.Modes.of(H0, W0, gamma)
    zetas = np.array([0.0, 5.0, 30.0])
    coef = modes.scalar_path(zetas, s, lam, 2 * lam)
    ref, _ = modes.limit_coefficients(s, lam, 2 * lam)
    Hl, Wl, _ = modes.limit(s, lam, 2 * lam)
    nh, nw = modes.norms(coef)
    errors = modes.direction_errors(coef, ref)
    for t, z in enumerate(zetas):
        H, W = modes.evolve(z, s, lam, 2 * lam)
        assert nh[t] == pytest.approx(np.linalg.norm(H), rel=1e-12)
        assert nw[t] == pytest.approx(np.linalg.norm(W), rel=1e-12)
        assert errors[t] == pytest.approx(U.direction_error(H, W, Hl, Wl), rel=1e-9, abs=1e-14)
        np.testing.assert_allclose(modes.logits(coef[t]), W @ H, rtol=1e-12, atol=1e-12)


def test_for_gamma_equals_a_fresh_decomposition():
    H0, W0, _ = init(18)
    first = U.Modes.of(H0, W0, 0.1)
    first.norms(first.scalar_path([1.0]))  # fill the cache
    other, fresh = first.for_gamma(0.7), U.Modes.of(H0, W0, 0.7)
    assert other.sigma == fresh.sigma
    for a, b in zip(other.evolve(3.0, 2.0), fresh.evolve(3.0, 2.0)):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_allclose(other.norms(other.scalar_path([3.0], 2.0)), fresh.norms(fresh.scalar_path([3.0], 2.0)))


def test_discrete_scalar_path_matches_the_product_of_steps():
    H0, W0, _ = init(19)
    modes = U.Modes.of(H0, W0, 0.3)
    path = modes.scalar_path_discrete(0.4, [0, 7, 150], 0.5, 0.02, 0.05)
    for t, k in enumerate([0, 7, 150]):
        step = modes.scalars_discrete(np.full(k, 0.4), 0.5, 0.02, 0.05)
        np.testing.assert_allclose(path[t], [step[name] for name in U.SPACES], rtol=1e-12)


@pytest.mark.parametrize("rescaled", [False, True])
def test_angle_recursion_matches_gd_and_the_printed_cosine_recursion(rescaled):
    gamma = 0.25
    H0, W, _ = init(20)
    W = W - W.mean(axis=0)
    lrs = 6.0 * (1 + np.arange(800)) ** -0.2
    xi = np.append(lrs[1:] / lrs[:-1], 1.0)
    H, record = U.spherical_gd(H0, W, gamma, lrs, rescaled=rescaled)
    theta0, alpha0, norm0 = U.spherical_start(H0, W, gamma, lrs[0], rescaled=rescaled)
    out = U.spherical_recursion(theta0, alpha0, norm0, xi, rescaled=rescaled)
    np.testing.assert_allclose(out["error"], record["direction_error"], rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(out["norm"], record["norm"], rtol=1e-12)
    betas, _ = U.cosine_recursion(np.cos(theta0), alpha0, xi, rescaled=rescaled)
    np.testing.assert_allclose(np.cos(out["theta"]), betas[-1], atol=1e-12)
    # the errors fall to or below sqrt(eps) ~ 1e-8 per column, where 1 - cos loses all digits:
    # the angle form still matches GD to 1e-9 relative there
    assert record["direction_error"][-1] < (1e-9 if rescaled else 1e-6)


def test_angle_recursion_mixes_plain_and_rescaled_runs():
    H0, W, _ = init(21)
    W = W - W.mean(axis=0)
    starts = [U.spherical_start(H0, W, 0.25, 2.0, rescaled=r) for r in (False, True)]
    both = U.spherical_recursion(*[np.stack([s[i] for s in starts]) for i in range(3)], np.ones(50), rescaled=[False, True])
    for k, r in enumerate((False, True)):
        alone = U.spherical_recursion(*starts[k], np.ones(50), rescaled=r)
        np.testing.assert_allclose(both["error"][:, k], alone["error"], rtol=1e-14)
        np.testing.assert_allclose(both["norm"][:, k], alone["norm"], rtol=1e-14)


def test_angle_recursion_records_every_k_steps():
    H0, W, _ = init(22)
    W = W - W.mean(axis=0)
    start = U.spherical_start(H0, W, 0.25, 2.0)
    every = U.spherical_recursion(*start, np.ones(25))
    sparse = U.spherical_recursion(*start, np.ones(25), record_every=10)
    np.testing.assert_array_equal(sparse["step"], [0, 10, 20, 25])
    np.testing.assert_allclose(sparse["error"], every["error"][[0, 10, 20, 25]], rtol=1e-15)
