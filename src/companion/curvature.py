"""Curvature of a loss landscape: Hessian-vector products, Hessian eigenvalues, empirical NTK.

A loss is given as ``loss_closure()`` (no arguments, returns the scalar loss computed from
``params``, e.g. ``lambda: loss_fn(model(x), y)`` with ``params = list(model.parameters())``).
Vectors over the parameters are flat, in the order of ``params``.

- :func:`hvp` and :func:`hessian`: exact, by double backward (the gradient graph is built
  once and reused for every product).
- :func:`top_hessian_eigenvalues` / :func:`min_hessian_eigenvalue`: ``method="eigsh"``
  (scipy's ARPACK over a ``LinearOperator`` of HVPs; vectors travel through the CPU) or
  ``method="lanczos"`` (:func:`lanczos`, torch, full reorthogonalization, stays on the GPU).
- :func:`empirical_ntk` (Jacobian Gram by ``torch.func``: ``vmap(jacrev)`` over samples
  with ``functional_call``) and :func:`ntk_top_eigenvalue` (dense, or Lanczos on the
  implicit kernel v -> J (J^T v) for models whose Jacobian does not fit in memory).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.func import functional_call, jacrev, jvp, vjp, vmap

__all__ = ["flatten", "hvp", "hessian", "lanczos", "top_hessian_eigenvalues",
           "min_hessian_eigenvalue", "empirical_ntk", "ntk_top_eigenvalue"]

Closure = Callable[[], torch.Tensor]


def flatten(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Concatenate tensors into one flat vector (the layout every function here uses)."""
    return torch.cat([t.reshape(-1) for t in tensors])


class _HessianOperator:
    """v -> H v for the loss at the current parameters, by double backward on one graph."""

    def __init__(self, loss_closure: Closure, params: Iterable[torch.Tensor]):
        self.params = list(params)
        if not self.params:
            raise ValueError("params is empty")
        self.size = sum(p.numel() for p in self.params)
        grads = torch.autograd.grad(loss_closure(), self.params, create_graph=True,
                                    allow_unused=True)
        # A gradient without a graph (loss linear in that block, or unused) has no curvature.
        self.grads = [(i, g) for i, g in enumerate(grads) if g is not None and g.requires_grad]
        ref = self.params[0]
        self.dtype, self.device = ref.dtype, ref.device

    def __call__(self, vector: torch.Tensor) -> torch.Tensor:
        if vector.numel() != self.size:
            raise ValueError(f"vector has {vector.numel()} entries, params have {self.size}")
        pieces = torch.split(vector.to(self.device, self.dtype).reshape(-1), [p.numel() for p in self.params])
        if not self.grads:
            return torch.zeros(self.size, dtype=self.dtype, device=self.device)
        products = torch.autograd.grad(
            [g for _, g in self.grads], self.params,
            grad_outputs=[pieces[i].reshape(g.shape) for i, g in self.grads],
            retain_graph=True, allow_unused=True, materialize_grads=True)
        return torch.cat([h.reshape(-1) for h in products]).detach()


def hvp(loss_closure: Closure, params: Iterable[torch.Tensor],
        vector: torch.Tensor) -> torch.Tensor:
    """The Hessian of the loss times ``vector`` (flat, length = number of parameters)."""
    return _HessianOperator(loss_closure, params)(vector)


def hessian(loss_closure: Closure, params: Iterable[torch.Tensor]) -> torch.Tensor:
    """The dense (P, P) Hessian, one HVP per column: for small models only."""
    operator = _HessianOperator(loss_closure, params)
    eye = torch.eye(operator.size, dtype=operator.dtype, device=operator.device)
    return torch.stack([operator(column) for column in eye], dim=1)


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], size: int, k: int = 1, *,
            which: str = "largest", tol: float = 1e-6, max_iter: int | None = None,
            seed: int = 0, dtype: torch.dtype = torch.float64,
            device: torch.device | str | None = None) -> torch.Tensor:
    """The k extreme eigenvalues of a symmetric operator by Lanczos with full reorthogonalization.

    Every new Krylov vector is orthogonalized twice against all previous ones (classical
    Gram-Schmidt, "twice is enough"), so no spurious copies of converged eigenvalues appear.
    Stops when the k wanted Ritz values have residual |beta_m s_m| <= tol * max(|theta|, 1e-30),
    when an invariant subspace is found, or after ``max_iter`` (default min(size, 300))
    steps. Returns float64 values on the CPU, descending for ``which="largest"``, ascending
    for ``"smallest"``. The start vector is Gaussian from ``seed`` (reproducible).
    """
    if which not in ("largest", "smallest"):
        raise ValueError(f"which must be 'largest' or 'smallest', got {which!r}")
    if not 1 <= k <= size:
        raise ValueError(f"need 1 <= k <= size, got k={k}, size={size}")
    max_iter = min(size, 300) if max_iter is None else min(max_iter, size)
    max_iter = max(max_iter, k)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(size, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    basis = torch.zeros(max_iter, size, dtype=dtype, device=device)
    basis[0] = q / torch.linalg.vector_norm(q)
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(max_iter):
        w = matvec(basis[j]).to(dtype).reshape(-1)
        alphas.append(torch.dot(w, basis[j]).item())
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = torch.linalg.vector_norm(w).item()
        tridiagonal = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, vectors = np.linalg.eigh(tridiagonal)
        wanted = slice(-k, None) if which == "largest" else slice(0, k)
        residual = beta * np.abs(vectors[-1, wanted])
        scale = np.maximum(np.abs(theta[wanted]), 1e-30)
        invariant = beta <= 1e-12 * max(np.abs(theta).max(), 1e-30)
        if len(alphas) >= k and (invariant or np.all(residual <= tol * scale)):
            break
        if invariant or j + 1 == max_iter:
            break
        betas.append(beta)
        basis[j + 1] = w / beta
    values = theta[wanted]
    values = values[::-1] if which == "largest" else values
    if len(values) < k:
        raise RuntimeError(f"the Krylov space closed after {len(theta)} < k={k} steps (too few "
                           "distinct eigenvalues, e.g. repeated ones): use a dense solver")
    return torch.from_numpy(values.copy())


def _extreme_hessian_eigenvalues(loss_closure, params, k, which, method, tol, max_iter, seed):
    operator = _HessianOperator(loss_closure, params)
    if method == "lanczos":
        return lanczos(operator, operator.size, k, which=which, tol=tol, max_iter=max_iter,
                       seed=seed, dtype=operator.dtype, device=operator.device)
    if method != "eigsh":
        raise ValueError(f"method must be 'eigsh' or 'lanczos', got {method!r}")
    from scipy.sparse.linalg import LinearOperator, eigsh

    def matvec(v: np.ndarray) -> np.ndarray:
        vector = torch.from_numpy(np.asarray(v, dtype=np.float64).reshape(-1))
        return operator(vector.to(operator.device)).double().cpu().numpy()

    size = operator.size
    if k >= size:  # ARPACK needs k < size: use the dense Hessian (tiny problems only)
        dense = torch.stack([operator(c) for c in torch.eye(size, dtype=operator.dtype,
                                                            device=operator.device)], dim=1)
        values = np.linalg.eigvalsh(dense.double().cpu().numpy())
    else:
        v0 = np.random.default_rng(seed).standard_normal(size)
        values = eigsh(LinearOperator((size, size), matvec=matvec, dtype=np.float64), k=k,
                       which="LA" if which == "largest" else "SA", tol=tol, v0=v0,
                       maxiter=max_iter, return_eigenvectors=False)
    values = np.sort(values)
    values = values[::-1][:k] if which == "largest" else values[:k]
    return torch.from_numpy(values.copy())


def top_hessian_eigenvalues(loss_closure: Closure, params: Iterable[torch.Tensor], k: int = 1, *,
                            method: str = "eigsh", tol: float = 1e-6, max_iter: int | None = None,
                            seed: int = 0) -> torch.Tensor:
    """The k largest (algebraic) Hessian eigenvalues, descending, float64 on the CPU.

    ``tol`` is the relative accuracy asked of each eigenvalue (ARPACK's ``tol``; the Ritz
    residual bound for Lanczos).
    """
    return _extreme_hessian_eigenvalues(loss_closure, params, k, "largest", method, tol,
                                        max_iter, seed)


def min_hessian_eigenvalue(loss_closure: Closure, params: Iterable[torch.Tensor], *,
                           method: str = "eigsh", tol: float = 1e-6, max_iter: int | None = None,
                           seed: int = 0) -> float:
    """The smallest (algebraic) Hessian eigenvalue: negative at a saddle."""
    return _extreme_hessian_eigenvalues(loss_closure, params, 1, "smallest", method, tol,
                                        max_iter, seed)[0].item()


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def empirical_ntk(model: torch.nn.Module, x: torch.Tensor, *, trace_outputs: bool = False,
                  chunk_size: int | None = None) -> torch.Tensor:
    """The empirical NTK J J^T of the model's outputs at inputs x (N, ...), J = d f / d theta.

    Returns (N*C, N*C) with row n*C + c for output c of sample n, or (N, N) summed over the
    C outputs with ``trace_outputs=True`` (neural-tangents' default ``trace_axes=(-1,)``).
    Samples are differentiated one by one (vmap), so the model must not couple samples:
    put BatchNorm in eval mode. ``chunk_size`` bounds how many per-sample Jacobians vmap
    builds at once; the full Jacobian (N, C, P) is held in memory.
    """
    params = _parameters(model)
    buffers = dict(model.named_buffers())

    def single(p, sample):
        return functional_call(model, (p, buffers), (sample.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(single), in_dims=(None, 0), chunk_size=chunk_size)(params, x)
    count = x.shape[0]
    flat = torch.cat([j.reshape(count, j.shape[1], -1) for j in jac.values()], dim=2)  # (N, C, P)
    if trace_outputs:
        return torch.einsum("ncp,mcp->nm", flat, flat)
    rows = flat.reshape(count * flat.shape[1], -1)
    return rows @ rows.T


def ntk_top_eigenvalue(model: torch.nn.Module, x: torch.Tensor, *, trace_outputs: bool = False,
                       method: str = "dense", tol: float = 1e-8, seed: int = 0) -> float:
    """The largest eigenvalue of :func:`empirical_ntk`.

    ``method="dense"`` forms the kernel and uses ``eigvalsh``; ``method="lanczos"`` never
    forms J: it runs :func:`lanczos` on v -> J (J^T v) (a vjp then a jvp of the batched
    model), for the full (N*C) kernel only.
    """
    if method == "dense":
        kernel = empirical_ntk(model, x, trace_outputs=trace_outputs)
        return torch.linalg.eigvalsh(kernel)[-1].item()
    if method != "lanczos":
        raise ValueError(f"method must be 'dense' or 'lanczos', got {method!r}")
    if trace_outputs:
        raise ValueError("the implicit (lanczos) NTK is the full N*C kernel: "
                         "use trace_outputs=False")
    params = _parameters(model)
    buffers = dict(model.named_buffers())

    def outputs(p):
        return functional_call(model, (p, buffers), (x,))

    value, pullback = vjp(outputs, params)

    def kernel_times(v: torch.Tensor) -> torch.Tensor:
        (cotangent,) = pullback(v.reshape(value.shape).to(value.dtype))
        with warnings.catch_warnings():  # torch's first forward-AD use scripts decompositions
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*",
                                    category=DeprecationWarning)
            return jvp(outputs, (params,), (cotangent,))[1].reshape(-1)

    return lanczos(kernel_times, value.numel(), 1, tol=tol, seed=seed, dtype=value.dtype,
                   device=value.device)[0].item()
