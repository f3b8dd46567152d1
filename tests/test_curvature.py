"""Curvature tools against explicitly formed Hessians/Jacobians (torch.autograd.functional, numpy)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from companion import curvature

DT = torch.float64
IN, HIDDEN, OUT, N = 3, 7, 4, 20


def make_problem(seed=0, activation=torch.nn.Tanh):
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), activation(),
                                torch.nn.Linear(HIDDEN, OUT)).to(DT)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=DT))
    x = torch.randn(N, IN, generator=gen, dtype=DT)
    y = torch.randint(0, OUT, (N,), generator=gen)
    return model, x, y


def flat_forward(theta, x, activation=torch.tanh):
    """The same MLP written out by hand on one flat parameter vector (nn.Linear's layout)."""
    sizes = [HIDDEN * IN, HIDDEN, OUT * HIDDEN, OUT]
    w1, b1, w2, b2 = torch.split(theta, sizes)
    hidden = activation(x @ w1.reshape(HIDDEN, IN).T + b1)
    return hidden @ w2.reshape(OUT, HIDDEN).T + b2


def reference_hessian(model, x, y, activation=torch.tanh):
    theta = curvature.flatten([p.detach() for p in model.parameters()])
    return torch.autograd.functional.hessian(
        lambda t: F.cross_entropy(flat_forward(t, x, activation), y), theta)


def closure_of(model, x, y):
    return lambda: F.cross_entropy(model(x), y)


@pytest.mark.parametrize("activation,fn", [(torch.nn.Tanh, torch.tanh), (torch.nn.ReLU, torch.relu)])
def test_dense_hessian_and_hvp_match_the_explicit_hessian(activation, fn):
    model, x, y = make_problem(activation=activation)
    params = list(model.parameters())
    expected = reference_hessian(model, x, y, fn)
    got = curvature.hessian(closure_of(model, x, y), params)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    v = torch.randn(expected.shape[0], generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(curvature.hvp(closure_of(model, x, y), params, v), expected @ v,
                               rtol=1e-10, atol=1e-12)


def test_hvp_matches_finite_differences_of_gradients():
    model, x, y = make_problem(seed=2)
    params = list(model.parameters())
    theta = curvature.flatten([p.detach() for p in params])
    v = torch.randn(theta.numel(), generator=torch.Generator().manual_seed(3), dtype=DT)

    def grad_at(t):
        t = t.clone().requires_grad_()
        (g,) = torch.autograd.grad(F.cross_entropy(flat_forward(t, x), y), t)
        return g

    eps = 1e-5
    fd = (grad_at(theta + eps * v) - grad_at(theta - eps * v)) / (2 * eps)
    torch.testing.assert_close(curvature.hvp(closure_of(model, x, y), params, v), fd, rtol=1e-7, atol=1e-9)


def test_block_without_curvature_gives_zero_rows():
    """A parameter the loss is linear in (a bias before a loss linear in it) has no graph."""
    w = torch.tensor([1.0, -2.0], dtype=DT, requires_grad=True)
    c = torch.tensor([0.5], dtype=DT, requires_grad=True)
    H = curvature.hessian(lambda: (w ** 3).sum() + 3.0 * c.sum(), [w, c])
    torch.testing.assert_close(H, torch.diag(torch.tensor([6.0, -12.0, 0.0], dtype=DT)))


@pytest.mark.parametrize("method", ["eigsh", "lanczos"])
def test_extreme_eigenvalues_match_eigvalsh(method):
    model, x, y = make_problem(seed=4)
    params = list(model.parameters())
    spectrum = np.linalg.eigvalsh(reference_hessian(model, x, y).numpy())
    top = curvature.top_hessian_eigenvalues(closure_of(model, x, y), params, k=3, method=method, tol=1e-10)
    np.testing.assert_allclose(top.numpy(), spectrum[::-1][:3], rtol=1e-8)
    low = curvature.min_hessian_eigenvalue(closure_of(model, x, y), params, method=method, tol=1e-10)
    assert spectrum[0] < 0  # tanh MLPs at random weights are not convex
    assert low == pytest.approx(spectrum[0], rel=1e-8)


def test_lanczos_on_an_explicit_matrix_with_clusters_and_early_breakdown():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((60, 60)))
    eigenvalues = np.concatenate([[5.0, 5.0 - 1e-4, 4.0], np.linspace(-1, 1, 57)])
    A = torch.from_numpy(q @ np.diag(eigenvalues) @ q.T)
    got = curvature.lanczos(lambda v: A @ v, 60, k=3, tol=1e-12)
    np.testing.assert_allclose(got.numpy(), [5.0, 5.0 - 1e-4, 4.0], rtol=1e-10)
    assert curvature.lanczos(lambda v: A @ v, 60, k=1, which="smallest", tol=1e-12).item() == pytest.approx(-1.0)
    # three distinct eigenvalues: the Krylov space is exhausted after three steps
    B = torch.from_numpy(q @ np.diag(np.repeat([3.0, 1.0, -2.0], 20)) @ q.T)
    np.testing.assert_allclose(curvature.lanczos(lambda v: B @ v, 60, k=2).numpy(), [3.0, 1.0], rtol=1e-12)


def reference_jacobian(model, x):
    theta = curvature.flatten([p.detach() for p in model.parameters()])
    return torch.autograd.functional.jacobian(lambda t: flat_forward(t, x).reshape(-1), theta)


def test_empirical_ntk_matches_the_explicit_jacobian_gram():
    model, x, _ = make_problem(seed=5)
    J = reference_jacobian(model, x)  # (N*C, P), row n*C + c
    torch.testing.assert_close(curvature.empirical_ntk(model, x), J @ J.T, rtol=1e-10, atol=1e-10)
    traced = torch.einsum("ncp,mcp->nm", J.reshape(N, OUT, -1), J.reshape(N, OUT, -1))
    torch.testing.assert_close(curvature.empirical_ntk(model, x, trace_outputs=True, chunk_size=7),
                               traced, rtol=1e-10, atol=1e-10)


def test_ntk_top_eigenvalue_dense_and_implicit_agree_with_eigvalsh():
    model, x, _ = make_problem(seed=6)
    J = reference_jacobian(model, x).numpy()
    expected = np.linalg.eigvalsh(J @ J.T)[-1]
    assert curvature.ntk_top_eigenvalue(model, x) == pytest.approx(expected, rel=1e-10)
    assert curvature.ntk_top_eigenvalue(model, x, method="lanczos", tol=1e-12) == pytest.approx(expected, rel=1e-9)
    traced = np.einsum("ncp,mcp->nm", J.reshape(N, OUT, -1), J.reshape(N, OUT, -1))
    assert curvature.ntk_top_eigenvalue(model, x, trace_outputs=True) == pytest.approx(
        np.linalg.eigvalsh(traced)[-1], rel=1e-10)


def test_bad_arguments_are_rejected():
    model, x, y = make_problem()
    with pytest.raises(ValueError, match="method"):
        curvature.top_hessian_eigenvalues(closure_of(model, x, y), list(model.parameters()), method="power")
    with pytest.raises(ValueError, match="entries"):
        curvature.hvp(closure_of(model, x, y), list(model.parameters()), torch.zeros(3, dtype=DT))
