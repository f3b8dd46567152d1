"""The UFM trainer against finite differences, hand-written GD steps, closed-form optima and expm."""

import math

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
import torch

from companion import losses, metrics, ufm

DT = torch.float64
GEN = torch.Generator().manual_seed(0)
K, n, d = 4, 3, 6
N = K * n
LABELS = ufm.class_major_labels(K, n)


def rand(*shape, scale=1.0):
    return scale * torch.randn(*shape, generator=GEN, dtype=DT)


LOSSES = [("ce", {}), ("ls", {"alpha": 0.1}), ("focal", {"gamma": 3.0}), ("focal", {"gamma": 0.5}),
          ("mse", {"scale": 1.0}), ("mse", {"scale": 15.0}), ("unhinged", {"gamma": 0.2}),
          ("unhinged", {}), ("rooted", {"k": 3.0})]


@pytest.mark.parametrize("name,params", LOSSES)
@pytest.mark.parametrize("normalize", [False, True])
def test_gradient_matches_finite_differences_of_objective(name, params, normalize):
    loss = losses.get(name, **params)
    W, H, b = rand(K, d), rand(d, N), rand(K)
    lam = (3e-2, 2e-2, 1e-2)
    f = lambda W_, H_, b_: ufm.objective(loss, W_, H_, b_, LABELS, *lam,  # noqa: E731
                                         normalize_features=normalize).item()
    grads = ufm.gradient(loss, W, H, b, LABELS, *lam, normalize_features=normalize)
    eps = 1e-6
    for _ in range(3):
        dW, dH, db = rand(K, d), rand(d, N), rand(K)
        fd = (f(W + eps * dW, H + eps * dH, b + eps * db)
              - f(W - eps * dW, H - eps * dH, b - eps * db)) / (2 * eps)
        analytic = ((grads["W"] * dW).sum() + (grads["H"] * dH).sum() + (grads["b"] * db).sum()).item()
        assert analytic == pytest.approx(fd, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("name,params", LOSSES)
def test_closed_form_logit_gradients_match_autograd(name, params):
    loss = losses.get(name, reduction="mean", **params)
    logits = torch.cat([rand(N, K, scale=3.0), rand(N, K, scale=0.1)])
    labels = torch.cat([LABELS, LABELS])
    z = logits.clone().requires_grad_()
    (expected,) = torch.autograd.grad(loss(z, labels), z)
    onehot = torch.nn.functional.one_hot(labels, K).to(DT)
    got = ufm._logit_gradient(loss, logits, labels, onehot)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_focal_logit_gradient_is_finite_when_p_y_rounds_to_one(gamma):
    """log p_y rounds to exactly 0 at margin 60; the gradient's limit there is 0 for every gamma."""
    logits = torch.cat([60.0 * torch.nn.functional.one_hot(LABELS, K).to(DT),
                        1e3 * torch.nn.functional.one_hot(LABELS, K).to(DT)])
    labels = torch.cat([LABELS, LABELS])
    onehot = torch.nn.functional.one_hot(labels, K).to(DT)
    got = ufm._logit_gradient(losses.get("focal", gamma=gamma), logits, labels, onehot)
    assert torch.isfinite(got).all() and got.abs().max() < 1e-20


def test_gradient_without_bias_matches_autograd():
    W, H = rand(K, d).requires_grad_(), rand(d, N).requires_grad_()
    value = ufm.objective("ce", W, H, None, LABELS, 0.1, 0.2)
    gW, gH = torch.autograd.grad(value, (W, H))
    grads = ufm.gradient("ce", W.detach(), H.detach(), None, LABELS, 0.1, 0.2)
    assert set(grads) == {"W", "H"}
    torch.testing.assert_close(grads["W"], gW, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(grads["H"], gH, rtol=1e-13, atol=1e-15)


def test_objective_matches_its_definition():
    W, H, b = rand(K, d), rand(d, N), rand(K)
    logits = (W @ H).T + b
    log_p = torch.log_softmax(logits, 1)
    data = -np.mean([log_p[i, LABELS[i]].item() for i in range(N)])
    reg = 0.5 * (0.1 * W.pow(2).sum() + 0.2 * H.pow(2).sum() + 0.3 * b.pow(2).sum()).item()
    assert ufm.objective("ce", W, H, b, LABELS, 0.1, 0.2, 0.3).item() == pytest.approx(data + reg, rel=1e-14)


def autograd_step(loss, W, H, b, lam, etas):
    W, H, b = (t.clone().requires_grad_() for t in (W, H, b))
    gW, gH, gb = torch.autograd.grad(ufm.objective(loss, W, H, b, LABELS, *lam), (W, H, b))
    return (W - etas[0] * gW).detach(), (H - etas[1] * gH).detach(), (b - etas[2] * gb).detach()


def test_gd_steps_equal_hand_written_updates():
    W0, H0, b0 = rand(K, d), rand(d, N), rand(K)
    lam = (1e-2, 2e-2, 3e-2)
    schedule = lambda step: [1.0, 0.5][step]  # noqa: E731
    result = ufm.train("ls", K, n, d, lambda_w=lam[0], lambda_h=lam[1], lambda_b=lam[2], steps=2,
                       lr=0.3, lr_scale={"H": 2.0, "b": 0.5}, lr_schedule=schedule,
                       init={"W": W0, "H": H0, "b": b0}, record_every=1)
    loss = losses.get("ls", alpha=0.1)
    W, H, b = W0, H0, b0
    for factor in (1.0, 0.5):
        eta = 0.3 * factor
        W, H, b = autograd_step(loss, W, H, b, lam, (eta, 2 * eta, 0.5 * eta))
    torch.testing.assert_close(result.W, W, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(result.H, H, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(result.b, b, rtol=1e-13, atol=1e-15)
    assert result.history["step"].tolist() == [0, 1, 2]
    assert result.history["time"].tolist() == pytest.approx([0.0, 0.3, 0.45])
    assert result.history["objective"].iloc[-1] == pytest.approx(
        ufm.objective(loss, W, H, b, LABELS, *lam).item(), rel=1e-13)


def ce_optimum(K, n, d, lam_w, lam_h, seed=5):
    """nc_losses.md §2.3, computed here from scratch: gamma = sqrt(n lam_w lam_h),
    t* = log(1/gamma - (K-1)), c = sqrt(lam_w/(n lam_h)), ||w||^2 = t* (K-1)/(c K)."""
    gamma = math.sqrt(n * lam_w * lam_h)
    t = math.log(1 / gamma - (K - 1))
    c = math.sqrt(lam_w / (n * lam_h))
    s = t * (K - 1) / (c * K)
    W = math.sqrt(s) * metrics.simplex_etf(K, d, seed=seed)
    H = c * W[ufm.class_major_labels(K, n)].T
    f_star = math.log1p((K - 1) * math.exp(-t)) + (K - 1) * gamma * t
    return W, H, f_star


def test_known_ce_optimum_is_a_fixed_point_of_gd():
    lam = 5e-3
    W, H, f_star = ce_optimum(10, 10, 20, lam, lam)
    b = torch.zeros(10, dtype=DT)
    grads = ufm.gradient("ce", W, H, b, ufm.class_major_labels(10, 10), lam, lam, lam)
    assert max(g.abs().max().item() for g in grads.values()) < 1e-13
    result = ufm.train("ce", 10, 10, 20, lambda_w=lam, lambda_h=lam, lambda_b=lam, steps=200, lr=1.0,
                       init={"W": W, "H": H, "b": b}, record_every=100)
    assert (result.W - W).abs().max() < 1e-12 and (result.H - H).abs().max() < 1e-12
    assert result.b.abs().max() < 1e-12
    assert result.history["objective"].tolist() == pytest.approx([f_star] * 3, rel=1e-12)


def test_gd_from_random_init_reaches_the_ce_optimum_with_neural_collapse():
    lam = 5e-3
    _, _, f_star = ce_optimum(10, 10, 20, lam, lam)
    result = ufm.train("ce", 10, 10, 20, lambda_w=lam, lambda_h=lam, lambda_b=lam, steps=5000,
                       lr=1.0, record_every=2500, metrics=ufm.nc_metrics)
    last = result.history.iloc[-1]
    assert last["objective"] == pytest.approx(f_star, rel=1e-9)
    assert last["grad_norm"] < 1e-8
    for key in ("nc1", "nc2_w", "nc2_h", "nc3", "nc4"):
        assert last[key] < 1e-6, key
    assert result.history["nc1"].iloc[0] > 1.0


def test_frozen_blocks_do_not_move():
    W0 = metrics.simplex_etf(K, d, seed=1)
    result = ufm.train("unhinged", K, n, d, lambda_w=0.0, lambda_h=0.1, steps=50, lr=0.5,
                       frozen=("W", "b"), init={"W": W0}, seed=3)
    assert torch.equal(result.W, W0)
    assert torch.equal(result.b, torch.zeros(K, dtype=DT))
    # With W fixed and W 1 = 0, H converges to (1 + gamma)/(lambda N) W^T (unhinged Thm 6); after
    # 50 steps of size 0.05 the initial part has shrunk by 0.95^50.
    H0 = ufm.train("unhinged", K, n, d, lambda_w=0.0, lambda_h=0.1, steps=0, lr=0.5, seed=3).H
    gamma = 1 / (K - 1)
    limit = (1 + gamma) / (0.1 * N) * W0[LABELS].T
    expected = 0.95 ** 50 * H0 + (1 - 0.95 ** 50) * limit
    torch.testing.assert_close(result.H, expected, rtol=1e-12, atol=1e-13)


def test_projection_hook_is_applied_after_every_step():
    calls = []

    def project(name, tensor):
        calls.append(name)
        return ufm.sphere(2.0)(name, tensor)

    result = ufm.train("ce", K, n, d, lambda_w=1e-3, lambda_h=0.0, steps=7, lr=0.5,
                       frozen=("b",), project=project)
    torch.testing.assert_close(result.H.norm(dim=0), torch.full((N,), 2.0, dtype=DT))
    assert calls == ["W", "H"] * 8  # once on the initial values, then after each of 7 steps
    # the W hook is the identity here: W is not on a sphere
    assert not torch.allclose(result.W.norm(dim=1), torch.full((K,), 2.0, dtype=DT))


def test_ball_projection_bounds_class_vectors_and_features():
    result = ufm.train("unhinged", K, n, d, lambda_w=0.0, lambda_h=0.0, steps=200, lr=0.5, bias=False,
                       project=ufm.sphere(1.5, blocks=("W", "H"), ball=True), seed=[0, 1])
    assert result.W.norm(dim=-1).max() <= 1.5 + 1e-12 and result.H.norm(dim=-2).max() <= 1.5 + 1e-12
    # the unbounded linear loss pushes every vector onto the boundary
    torch.testing.assert_close(result.W.norm(dim=-1), torch.full((2, K), 1.5, dtype=DT))


def test_loss_objects_must_average():
    with pytest.raises(ValueError, match="reduction"):
        ufm.train(losses.get("ce", reduction="sum"), K, n, d, lambda_w=0, lambda_h=0, steps=1, lr=1)


def test_batched_seeds_equal_separate_runs():
    kwargs = dict(lambda_w=1e-2, lambda_h=1e-2, lambda_b=1e-2, steps=30, lr=0.5, record_every=10,
                  metrics=ufm.nc_metrics)
    batched = ufm.train("focal", K, n, d, seed=[0, 7], **kwargs)
    assert batched.W.shape == (2, K, d) and set(batched.history["seed"]) == {0, 7}
    for i, seed in enumerate((0, 7)):
        single = ufm.train("focal", K, n, d, seed=seed, **kwargs)
        torch.testing.assert_close(batched.W[i], single.W, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(batched.H[i], single.H, rtol=1e-12, atol=1e-14)
        rows = batched.history[batched.history["seed"] == seed].drop(columns="seed").reset_index(drop=True)
        np.testing.assert_allclose(rows.to_numpy(), single.history.to_numpy(), rtol=1e-9, atol=1e-12)


def unhinged_velocity_matrix(lam, scale_h):
    """Unhinged loss, no bias: the gradient flow is linear, x' = A x with x = (vec W, vec H); A is
    built from the paper's formulas dW/dt = -(G^T H^T + lam W), dH/dt = -s (W^T G^T + lam H),
    G = (gamma 1 - (1+gamma) e_y)/N (unhinged.md §1.2, eq. 4 and 12)."""
    gamma = 1 / (K - 1)
    G = (gamma - (1 + gamma) * np.eye(K)[LABELS.numpy()]) / N
    size_w = K * d

    def velocity(x):
        W, H = x[:size_w].reshape(K, d), x[size_w:].reshape(d, N)
        return np.concatenate([-(G.T @ H.T + lam * W).ravel(), -scale_h * (W.T @ G.T + lam * H).ravel()])

    return np.stack([velocity(e) for e in np.eye(size_w + d * N)], axis=1)


def split_state(x):
    return torch.from_numpy(x[:K * d].reshape(K, d)), torch.from_numpy(x[K * d:].reshape(d, N))


def test_gradient_flow_integrators_converge_to_the_exact_flow():
    W0, H0 = rand(K, d), rand(d, N)
    kwargs = dict(lambda_w=0.05, lambda_h=0.05, steps=10, lr=0.5, bias=False, lr_scale={"H": 0.5},
                  init={"W": W0, "H": H0})
    A = unhinged_velocity_matrix(0.05, 0.5)
    W_ref, H_ref = split_state(scipy.linalg.expm(5.0 * A) @ np.concatenate([W0.numpy().ravel(), H0.numpy().ravel()]))
    err = {}
    for integrator, substeps in (("euler", 1), ("euler", 8), ("rk4", 1), ("rk4", 2)):
        r = ufm.train("unhinged", K, n, d, integrator=integrator, substeps=substeps, **kwargs)
        err[integrator, substeps] = max((r.W - W_ref).abs().max().item(), (r.H - H_ref).abs().max().item())
    assert err["euler", 8] < err["euler", 1] / 4  # first order
    assert err["rk4", 1] < 1e-6 and err["rk4", 2] < err["rk4", 1] / 10  # fourth order
    assert err["rk4", 2] < 1e-7


def test_gd_with_time_varying_rates_equals_the_exact_discrete_solution():
    """eta_1 = s eta_2 with a cosine schedule: x_T = prod_t (I + eta_t A) x_0 (unhinged.md §2)."""
    W0, H0 = rand(K, d), rand(d, N)
    steps, lr = 300, 0.4
    schedule = lambda t: 0.5 * (1 + math.cos(math.pi * t / steps))  # noqa: E731
    r = ufm.train("unhinged", K, n, d, lambda_w=0.02, lambda_h=0.02, steps=steps, lr=lr, bias=False,
                  lr_scale={"H": 0.3}, lr_schedule=schedule, init={"W": W0, "H": H0})
    A = unhinged_velocity_matrix(0.02, 0.3)
    x = np.concatenate([W0.numpy().ravel(), H0.numpy().ravel()])
    for t in range(steps):
        x = x + lr * schedule(t) * (A @ x)
    W_ref, H_ref = split_state(x)
    torch.testing.assert_close(r.W, W_ref, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(r.H, H_ref, rtol=1e-11, atol=1e-12)


def test_normalized_features_follow_the_spherical_update_of_unhinged_theorem_7():
    """h <- h + (1+gamma) eta / (N ||h||) (I - h^ h^T) w_y with W a fixed ETF (unhinged.md eq. 19)."""
    W = metrics.simplex_etf(K, d, seed=2)
    H = rand(d, N)
    eta, gamma = 0.7, 1 / (K - 1)
    r = ufm.train("unhinged", K, n, d, lambda_w=0.0, lambda_h=0.0, steps=3, lr=eta, bias=False,
                  frozen=("W",), normalize_features=True, init={"W": W, "H": H})
    for _ in range(3):
        columns = []
        for i in range(N):
            h, w = H[:, i], W[LABELS[i]]
            unit = h / h.norm()
            columns.append(h + (1 + gamma) * eta / (N * h.norm()) * (w - unit * (unit @ w)))
        H = torch.stack(columns, dim=1)
    torch.testing.assert_close(r.H, H, rtol=1e-13, atol=1e-14)


def test_divergence_is_recorded_and_stops_the_run():
    result = ufm.train("mse", K, n, d, lambda_w=1e-3, lambda_h=1e-3, steps=2000, lr=50.0,
                       record_every=10, metrics=ufm.nc_metrics)
    assert result.diverged
    assert not np.isfinite(result.history["objective"].iloc[-1])
    assert result.history["step"].iloc[-1] < 2000


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown blocks"):
        ufm.train("ce", K, n, d, lambda_w=0, lambda_h=0, steps=1, lr=1, frozen=("V",))
    with pytest.raises(ValueError, match="integrator"):
        ufm.train("ce", K, n, d, lambda_w=0, lambda_h=0, steps=1, lr=1, integrator="rk45")


def test_a_diverging_seed_stops_alone_in_a_batch():
    """Seed 1 blows up (MSE, lr 2, large init) and seed 0 does not: batched = two separate runs."""
    settings = dict(lambda_w=1e-3, lambda_h=1e-3, steps=300, lr=2.0, init_scale=1.0, record_every=50)
    alone = {s: ufm.train("mse", 4, 3, 8, seed=s, **settings) for s in (0, 1)}
    assert not alone[0].diverged and alone[1].diverged
    batch = ufm.train("mse", 4, 3, 8, seed=[0, 1], **settings)
    assert batch.diverged and batch.diverged_by_seed == [False, True]
    for i, s in enumerate((0, 1)):
        mine = batch.history[batch.history.seed == s].drop(columns=["seed", "time"]).reset_index(drop=True)
        theirs = alone[s].history.drop(columns=["time"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, theirs, rtol=1e-10)
        torch.testing.assert_close(batch.W[i], alone[s].W, equal_nan=True, rtol=1e-10, atol=1e-12)
    final = ufm.final_state(batch)
    assert final.diverged.tolist() == [False, True]


def test_final_state_margins_use_the_normalized_features_of_the_run():
    result = ufm.train("ce", 3, 4, 5, lambda_w=1e-2, lambda_h=1e-2, steps=50, lr=0.5, normalize_features=True)
    unit = result.H / result.H.norm(dim=0, keepdim=True)
    expected = metrics.margins(unit.T @ result.W.T + result.b, result.labels)
    row = ufm.final_state(result).iloc[0]
    assert row.margin_min == pytest.approx(float(expected.min()), rel=1e-12)
    assert row.margin_mean == pytest.approx(float(expected.mean()), rel=1e-12)
