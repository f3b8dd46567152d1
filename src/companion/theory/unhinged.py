"""Closed forms of "On the Dynamics Under the Unhinged Loss and Beyond" (float64 NumPy).

Layer-peeled model (Sec. 3.1): C classes, N samples per class, free features ``H`` of shape
(p, C*N) in **class-major** order (column ``c*N + i`` has label c), prototypes ``W`` of shape
(C, p) (rows are the class prototypes w_c, as in ``companion.ufm`` and every model's
classifier; the paper's p x C matrix is ``W.T``) and bias ``b`` (C,). The objective is

    L = 1/(CN) sum_{i,c} [ -w_c.h_ic - b_c + gamma sum_{j!=c} (w_j.h_ic + b_j) ]
        + lambda_h/2 ||H||^2 + lambda_w/2 ||W||^2 + lambda_b/2 ||b||^2

and its gradient flow with learning rates eta_H = s * eta_W is linear: with zeta = int eta_W,
dZ/dzeta = Z K for Z = (H, W^T). The space of (H, W) splits into five invariant subspaces
(Lemma 9): E1+/- (class-mean structure with centred prototypes, eigenvalue
+/-(1+gamma)/(C sqrt N)), E2+/- (the common mean, +/-(1+gamma-gamma C)/(C sqrt N)) and E3
(within-class deviations, 0). On a subspace with eigenvalue sigma the H part and the W part
are only rescaled, by scalars (a, b) that solve the 2x2 system

    d(a, b)/dzeta = G (a, b),   G = [[-lambda_h s, sigma s], [sigma, -lambda_w]],   a(0) = b(0) = 1.

The paper prints explicit formulas for (a, b) (eq. 6, 69, 75, 79) that contain typos; here the
scalars come from the 2x2 matrix exponential (continuous time, Theorems 2 and 4) or from the
product of the 2x2 steps I + eta_k G (exact discrete gradient descent, any schedule), which is
exact. Everything else (Corollaries 3 and 5, Theorem 6 with a fixed classifier, the spherical
recursion of Theorem 7 / Lemma 10, the linear NTK system of Theorem 8 and the corrected
Lemma 1) follows below, each function naming the statement it implements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import expm

SPACES = ("E1+", "E1-", "E2+", "E2-", "E3")


# -- the model ------------------------------------------------------------------------------


def labels(num_classes: int, per_class: int) -> np.ndarray:
    """Class-major labels: ``[0]*N + [1]*N + ...``."""
    return np.repeat(np.arange(num_classes), per_class)


def M_matrix(num_classes: int, per_class: int, gamma: float) -> np.ndarray:
    """M = -Y = 1/(CN) ((1+gamma) (I_C kron 1_N^T) - gamma 1_C 1_CN^T), shape (C, CN)."""
    C, N = num_classes, per_class
    onehot = np.kron(np.eye(C), np.ones((1, N)))
    return ((1 + gamma) * onehot - gamma * np.ones((C, C * N))) / (C * N)


def class_sums(H: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class sums of the columns of a class-major H: shape (p, C)."""
    p = H.shape[0]
    return H.reshape(p, num_classes, -1).sum(axis=2)


def descent_H(W: np.ndarray, per_class: int, gamma: float) -> np.ndarray:
    """-dL/dH without regularization: W^T M = 1/(CN) ((1+gamma) w_c - gamma sum_j w_j) per column."""
    C = W.shape[0]
    per_class_direction = ((1 + gamma) * W - gamma * W.sum(axis=0)) / (C * per_class)
    return np.repeat(per_class_direction.T, per_class, axis=1)


def descent_W(H: np.ndarray, num_classes: int, gamma: float) -> np.ndarray:
    """-dL/dW without regularization: (H M^T)^T = 1/(CN) ((1+gamma) S_c - gamma sum_c S_c) per row."""
    C = num_classes
    N = H.shape[1] // C
    sums = class_sums(H, C)
    return (((1 + gamma) * sums - gamma * sums.sum(axis=1, keepdims=True)) / (C * N)).T


def objective(H: np.ndarray, W: np.ndarray, gamma: float, b: np.ndarray | None = None,
              lambda_h: float = 0.0, lambda_w: float = 0.0, lambda_b: float = 0.0) -> float:
    """The regularized layer-peeled unhinged objective (eq. 2 and 11), mean over the CN samples."""
    C = W.shape[0]
    logits = W @ H if b is None else W @ H + b[:, None]
    y = labels(C, H.shape[1] // C)
    target = logits[y, np.arange(len(y))]
    per_sample = -(1 + gamma) * target + gamma * logits.sum(axis=0)
    value = per_sample.mean() + lambda_h / 2 * np.sum(H**2) + lambda_w / 2 * np.sum(W**2)
    if b is not None:
        value += lambda_b / 2 * np.sum(b**2)
    return float(value)


def accuracy(H: np.ndarray, W: np.ndarray, b: np.ndarray | None = None) -> float:
    """Training accuracy of the rule argmax_c (w_c.h + b_c) on class-major H."""
    logits = W @ H if b is None else W @ H + b[:, None]
    return float(np.mean(logits.argmax(axis=0) == labels(W.shape[0], H.shape[1] // W.shape[0])))


# -- thresholds and rates -------------------------------------------------------------------


def sigma_1(num_classes: int, per_class: int, gamma: float) -> float:
    """Eigenvalue of E1+: (1+gamma)/(C sqrt N)."""
    return (1 + gamma) / (num_classes * np.sqrt(per_class))


def sigma_2(num_classes: int, per_class: int, gamma: float) -> float:
    """Eigenvalue of E2+: (1+gamma-gamma C)/(C sqrt N) (signed)."""
    return (1 + gamma - gamma * num_classes) / (num_classes * np.sqrt(per_class))


def eigenvalues(num_classes: int, per_class: int, gamma: float) -> dict[str, float]:
    """The eigenvalue of B = [[0, M^T], [M, 0]] on each of the five subspaces."""
    s1, s2 = sigma_1(num_classes, per_class, gamma), sigma_2(num_classes, per_class, gamma)
    return {"E1+": s1, "E1-": -s1, "E2+": s2, "E2-": -s2, "E3": 0.0}


def lambda_star(num_classes: int, per_class: int, gamma: float) -> float:
    """Weight-decay threshold of Corollary 5: lambda* = (1+gamma)/(C sqrt N)."""
    return sigma_1(num_classes, per_class, gamma)


def gamma_upper(num_classes: int) -> float:
    """Corollary 3's bound: directions converge for 0 < gamma < 2/(C-2) (any gamma if C = 2)."""
    return np.inf if num_classes <= 2 else 2.0 / (num_classes - 2)


def corollary3_exponent(num_classes: int, gamma: float) -> float:
    """Corollary 3: the direction error is O(exp(e * sqrt(zeta1 zeta2)/(C sqrt N))), e = max{-gamma C, (C-2)gamma - 2}."""
    return max(-gamma * num_classes, (num_classes - 2) * gamma - 2)


def mode_generator(sigma: float, s: float = 1.0, lambda_h: float = 0.0, lambda_w: float = 0.0) -> np.ndarray:
    """G = [[-lambda_h s, sigma s], [sigma, -lambda_w]]: d(a, b)/dzeta_W on a subspace with eigenvalue sigma."""
    return np.array([[-lambda_h * s, sigma * s], [sigma, -lambda_w]], dtype=np.float64)


def _symmetric_form(sigma: float, s: float, lambda_h: float, lambda_w: float) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of G through the symmetric matrix D^-1 G D, D = diag(sqrt s, 1).

    G = D Q diag(mu) Q^T D^-1 with Q orthogonal, so the eigenvalues are real and every
    function of G is well conditioned, even where two eigenvalues (nearly) coincide.
    """
    rs = np.sqrt(s)
    sym = np.array([[-lambda_h * s, sigma * rs], [sigma * rs, -lambda_w]])
    mu, Q = np.linalg.eigh(sym)
    return mu, Q


def mode_growth(sigma: float, s: float = 1.0, lambda_h: float = 0.0, lambda_w: float = 0.0) -> float:
    """Top eigenvalue of G: (a, b) grow like exp(mu * zeta_W) (Corollary 5's omega_2(sigma))."""
    return float(_symmetric_form(sigma, s, lambda_h, lambda_w)[0][-1])


def corollary5_omega(sigma: float, s: float, lam: float) -> tuple[float, float]:
    """(omega_1, omega_2) = (-lam(s+1) -/+ sqrt(lam^2 (s-1)^2 + 4 s sigma^2))/2 as printed (eq. 74)."""
    root = np.sqrt(lam**2 * (s - 1) ** 2 + 4 * s * sigma**2)
    return (-lam * (s + 1) - root) / 2, (-lam * (s + 1) + root) / 2


def mode_asymptote(sigma: float, s: float = 1.0, lambda_h: float = 0.0,
                   lambda_w: float = 0.0) -> tuple[float, np.ndarray]:
    """(mu, c) with (a, b)(zeta) = exp(mu zeta) c + o(exp(mu zeta)): the top mode of G applied to (1, 1)."""
    mu, Q = _symmetric_form(sigma, s, lambda_h, lambda_w)
    if mu[-1] - mu[0] <= 1e-14 * max(1.0, abs(mu[-1])):
        return float(mu[-1]), np.ones(2)  # G is a multiple of I: (1, 1) is its eigenvector
    D = np.array([np.sqrt(s), 1.0])
    top = Q[:, -1]
    # (1,1) = D Q Q^T D^-1 (1,1): the coefficient on the top eigenvector is q.(D^-1 1)
    coefficient = top @ (1.0 / D)
    return float(mu[-1]), D * top * coefficient


def direction_rate(num_classes: int, per_class: int, gamma: float, s: float = 1.0,
                   lambda_h: float = 0.0, lambda_w: float = 0.0) -> float:
    """Predicted decay rate (per unit zeta_W) of ||Z/||Z|| - Zbar/||Zbar|| || for generic Z0.

    The difference of the top growth rate of E1 and the next one (E2 or E3); negative means
    E1 is not the dominant subspace (gamma > 2/(C-2)) and the direction does not converge to Zbar.
    """
    ev = eigenvalues(num_classes, per_class, gamma)
    g = {k: mode_growth(v, s, lambda_h, lambda_w) for k, v in ev.items()}
    e3 = -lambda_h * s  # E3 has no W part: a = exp(-lambda_h s zeta)
    return g["E1+"] - max(g["E2+"], g["E2-"], e3)


# -- the five subspaces ---------------------------------------------------------------------


def project(H: np.ndarray, W: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Orthogonal projections of (H, W) onto E1+, E1-, E2+, E2-, E3 (Lemmas 15-17).

    Returns ``{space: (H_part, W_part)}`` with W parts in the (C, p) convention; the parts
    sum to (H, W).
    """
    C, p = W.shape
    N = H.shape[1] // C
    rN = np.sqrt(N)
    Wp = W.T  # paper's p x C
    sums = class_sums(H, C)  # H (I_C kron 1_N)
    centre = np.eye(C) - np.ones((C, C)) / C
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for eps, name in ((1.0, "+"), (-1.0, "-")):
        P = 0.5 * (eps / rN * sums + Wp) @ centre
        parts["E1" + name] = (eps / rN * np.repeat(P, N, axis=1), P.T.copy())
    for eps, name in ((1.0, "+"), (-1.0, "-")):
        h = (eps / rN * H.sum(axis=1) + Wp.sum(axis=1)) / (2 * C)
        parts["E2" + name] = (eps / rN * np.repeat(h[:, None], C * N, axis=1),
                              np.repeat(h[None, :], C, axis=0))
    means = np.repeat(sums / N, N, axis=1)
    parts["E3"] = (H - means, np.zeros_like(W))
    return parts


@dataclass(frozen=True)
class Modes:
    """An initial point (H0, W0) split over the five subspaces, ready to be evolved.

    ``evolve(zeta)`` is the gradient flow (Theorems 2 and 4), ``evolve_discrete(lrs)`` gradient
    descent with the step sizes ``lrs`` for W (s * lrs for H), and ``limit(...)`` the direction
    (regularized: the point) the flow converges to (Corollaries 3 and 5).
    """

    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    sigma: dict[str, float]

    @classmethod
    def of(cls, H0: np.ndarray, W0: np.ndarray, gamma: float) -> Modes:
        C = W0.shape[0]
        return cls(project(H0, W0), eigenvalues(C, H0.shape[1] // C, gamma))

    def for_gamma(self, gamma: float) -> Modes:
        """The same initial point under another gamma (the projections do not depend on gamma)."""
        C = len(self.parts["E1+"][1])
        per_class = self.parts["E1+"][0].shape[1] // C
        other = Modes(self.parts, eigenvalues(C, per_class, gamma))
        for cached in ("_grams", "_cross"):  # cached Gram/cross products carry over
            if cached in self.__dict__:
                other.__dict__[cached] = self.__dict__[cached]
        return other

    def _combine(self, scalars: dict[str, tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        H = sum(scalars[k][0] * self.parts[k][0] for k in SPACES)
        W = sum(scalars[k][1] * self.parts[k][1] for k in SPACES)
        return H, W

    def scalars(self, zeta: float, s: float = 1.0, lambda_h: float = 0.0,
                lambda_w: float = 0.0) -> dict[str, tuple[float, float]]:
        """(a, b) = expm(zeta G(sigma)) (1, 1) per subspace (Theorem 4; Theorem 2 when lambda = 0)."""
        out = {}
        for k in SPACES:
            a, b = expm(zeta * mode_generator(self.sigma[k], s, lambda_h, lambda_w)) @ np.ones(2)
            out[k] = (float(a), float(b))
        return out

    def evolve(self, zeta: float, s: float = 1.0, lambda_h: float = 0.0,
               lambda_w: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) of the gradient flow after zeta = int eta_W (eta_H = s eta_W)."""
        return self._combine(self.scalars(zeta, s, lambda_h, lambda_w))

    def scalars_discrete(self, lrs: ArrayLike, s: float = 1.0, lambda_h: float = 0.0,
                         lambda_w: float = 0.0) -> dict[str, tuple[float, float]]:
        """(a, b) = prod_k (I + lr_k G(sigma)) (1, 1): exact for gradient descent with these steps."""
        lrs = np.asarray(lrs, dtype=np.float64)
        out = {}
        for k in SPACES:
            mu, Q = _symmetric_form(self.sigma[k], s, lambda_h, lambda_w)
            factors = np.prod(1.0 + lrs[:, None] * mu[None, :], axis=0)
            D = np.array([np.sqrt(s), 1.0])
            a, b = D * (Q @ (factors * (Q.T @ (1.0 / D))))
            out[k] = (float(a), float(b))
        return out

    def evolve_discrete(self, lrs: ArrayLike, s: float = 1.0, lambda_h: float = 0.0,
                        lambda_w: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """(H, W) after gradient descent with W step sizes ``lrs`` and H step sizes s * lrs."""
        return self._combine(self.scalars_discrete(lrs, s, lambda_h, lambda_w))

    def limit_coefficients(self, s: float = 1.0, lambda_h: float = 0.0,
                           lambda_w: float = 0.0) -> tuple[np.ndarray, float]:
        """(coef, mu): Z(zeta) ~ exp(mu zeta) sum_i (coef[i, 0] H_i, coef[i, 1] W_i), i over SPACES.

        Keeps the asymptote of every subspace whose growth rate is the largest one (both E1+/-
        for gamma < 2/(C-2); E2+/- beyond). With lambda = lambda* (Corollary 5) mu = 0 and the
        sum is the finite limit; with lambda = 0 and s = 1 it is Pi1+ Z0 (Corollary 3's Zbar).
        """
        rates, coefficients = {}, {}
        for k in SPACES:
            if k == "E3":
                rates[k], coefficients[k] = -lambda_h * s, np.array([1.0, 0.0])
            else:
                rates[k], coefficients[k] = mode_asymptote(self.sigma[k], s, lambda_h, lambda_w)
        top = max(rates.values())
        tol = 1e-12 * max(1.0, abs(top))
        coef = np.array([coefficients[k] if rates[k] >= top - tol else np.zeros(2) for k in SPACES])
        return coef, top

    def limit(self, s: float = 1.0, lambda_h: float = 0.0,
              lambda_w: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
        """(H, W, mu): the dominant part of the flow, Z(zeta) ~ exp(mu zeta) (H, W); see limit_coefficients."""
        coef, top = self.limit_coefficients(s, lambda_h, lambda_w)
        H, W = self._combine({k: tuple(coef[i]) for i, k in enumerate(SPACES)})
        return H, W, top

    # -- whole trajectories without forming (H, W): Gram matrices of the parts -------------

    def scalar_path(self, zetas: ArrayLike, s: float = 1.0, lambda_h: float = 0.0,
                    lambda_w: float = 0.0) -> np.ndarray:
        """(T, 5, 2) scalars (a, b) = expm(zeta G(sigma)) (1, 1) for every zeta and subspace."""
        zetas = np.atleast_1d(np.asarray(zetas, dtype=np.float64))
        G = np.stack([mode_generator(self.sigma[k], s, lambda_h, lambda_w) for k in SPACES])
        E = expm(zetas[:, None, None, None] * G[None])  # (T, 5, 2, 2)
        return E.sum(axis=-1)

    def scalar_path_discrete(self, lr: float, steps: ArrayLike, s: float = 1.0, lambda_h: float = 0.0,
                             lambda_w: float = 0.0) -> np.ndarray:
        """(T, 5, 2) scalars (I + lr G(sigma))^k (1, 1) of gradient descent with a constant step, k in ``steps``."""
        steps = np.atleast_1d(np.asarray(steps, dtype=np.float64))
        D = np.array([np.sqrt(s), 1.0])
        out = np.empty((len(steps), len(SPACES), 2))
        for i, k in enumerate(SPACES):
            mu, Q = _symmetric_form(self.sigma[k], s, lambda_h, lambda_w)
            factors = (1.0 + lr * mu[None, :]) ** steps[:, None]  # (T, 2)
            out[:, i, :] = D * ((factors * (Q.T @ (1.0 / D))[None, :]) @ Q.T)
        return out

    @cached_property
    def _grams(self) -> tuple[np.ndarray, np.ndarray]:
        Hs = np.stack([self.parts[k][0].ravel() for k in SPACES])
        Ws = np.stack([self.parts[k][1].ravel() for k in SPACES])
        return Hs @ Hs.T, Ws @ Ws.T

    def norms(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """||H||_F and ||W||_F of sum_i (coef[..., i, 0] H_i, coef[..., i, 1] W_i)."""
        GH, GW = self._grams
        a, b = coef[..., 0], coef[..., 1]
        return (np.sqrt(np.einsum("...i,ij,...j->...", a, GH, a)),
                np.sqrt(np.einsum("...i,ij,...j->...", b, GW, b)))

    def direction_errors(self, coef: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """|| Z/||Z|| - R/||R|| ||_F for Z, R given by coefficients on the parts (no cancellation)."""
        GH, GW = self._grams

        def normalized(c):
            nh, nw = self.norms(c)
            return c / np.sqrt(nh**2 + nw**2)[..., None, None]

        d = normalized(coef) - normalized(reference)
        nh, nw = self.norms(d)
        return np.sqrt(nh**2 + nw**2)

    @cached_property
    def _cross(self) -> np.ndarray:
        """(5, 5, C, CN): W_i H_j, the logits of every pair of parts."""
        return np.stack([np.stack([self.parts[i][1] @ self.parts[j][0] for j in SPACES]) for i in SPACES])

    def logits(self, coef: np.ndarray) -> np.ndarray:
        """(C, CN) logits W H (no bias) of the point with coefficients ``coef`` (5, 2)."""
        return np.einsum("i,j,ijcn->cn", coef[:, 1], coef[:, 0], self._cross)


# -- dense, independent references ----------------------------------------------------------


def flow_generator(num_classes: int, per_class: int, gamma: float, s: float = 1.0,
                   lambda_h: float = 0.0, lambda_w: float = 0.0) -> np.ndarray:
    """K = [[-lambda_h s I_CN, M^T], [s M, -lambda_w I_C]]: dZ/dzeta_W = Z K for Z = (H, W^T)."""
    C, N = num_classes, per_class
    M = M_matrix(C, N, gamma)
    return np.block([[-lambda_h * s * np.eye(C * N), M.T], [s * M, -lambda_w * np.eye(C)]])


def dense_flow(H0: np.ndarray, W0: np.ndarray, gamma: float, zeta: float, s: float = 1.0,
               lambda_h: float = 0.0, lambda_w: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Z0 expm(zeta K): the gradient flow from the dense matrix exponential (a reference)."""
    C = W0.shape[0]
    K = flow_generator(C, H0.shape[1] // C, gamma, s, lambda_h, lambda_w)
    Z = np.hstack([H0, W0.T]) @ expm(zeta * K)
    return Z[:, : H0.shape[1]], Z[:, H0.shape[1]:].T.copy()


def dense_discrete(H0: np.ndarray, W0: np.ndarray, gamma: float, lrs: ArrayLike, s: float = 1.0,
                   lambda_h: float = 0.0, lambda_w: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Z0 prod_k (I + lr_k K), multiplied out step by step (a reference for gradient descent)."""
    C = W0.shape[0]
    K = flow_generator(C, H0.shape[1] // C, gamma, s, lambda_h, lambda_w)
    Z = np.hstack([H0, W0.T])
    for lr in np.asarray(lrs, dtype=np.float64):
        Z = Z + lr * (Z @ K)
    return Z[:, : H0.shape[1]], Z[:, H0.shape[1]:].T.copy()


def gradient_descent(H0: np.ndarray, W0: np.ndarray, gamma: float, lrs: ArrayLike, s: float = 1.0,
                     lambda_h: float = 0.0, lambda_w: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Plain simultaneous gradient descent with the analytic gradients (class sums, O(pCN) a step)."""
    H, W = H0.copy(), W0.copy()
    C, N = W.shape[0], H.shape[1] // W.shape[0]
    for lr in np.asarray(lrs, dtype=np.float64):
        dH = descent_H(W, N, gamma) - lambda_h * H
        dW = descent_W(H, C, gamma) - lambda_w * W
        H, W = H + s * lr * dH, W + lr * dW
    return H, W


# -- bias (eq. 7 and 14) --------------------------------------------------------------------


def bias_drift(num_classes: int, gamma: float) -> float:
    """-dL/db_c = (1 + gamma - gamma C)/C for every class."""
    return (1 + gamma - gamma * num_classes) / num_classes


def bias_flow(b0: ArrayLike, num_classes: int, gamma: float, zeta: float, lambda_b: float = 0.0) -> np.ndarray:
    """b(zeta) = b_inf + (b0 - b_inf) e^(-lambda_b zeta), b_inf = drift/lambda_b; b0 + drift zeta if lambda_b = 0."""
    b0 = np.asarray(b0, dtype=np.float64)
    g = bias_drift(num_classes, gamma)
    if lambda_b == 0:
        return b0 + g * zeta
    decay = np.exp(-lambda_b * zeta)
    return g / lambda_b + (b0 - g / lambda_b) * decay


def bias_discrete(b0: ArrayLike, num_classes: int, gamma: float, lrs: ArrayLike, lambda_b: float = 0.0) -> np.ndarray:
    """The bias after gradient descent with step sizes ``lrs`` (exact)."""
    b0 = np.asarray(b0, dtype=np.float64)
    lrs = np.asarray(lrs, dtype=np.float64)
    g = bias_drift(num_classes, gamma)
    if lambda_b == 0:
        return b0 + g * lrs.sum()
    decay = np.prod(1.0 - lrs * lambda_b)
    return g / lambda_b + (b0 - g / lambda_b) * decay


# -- printed statements, for comparison with the generic route ------------------------------


def corollary3_zbar(modes: Modes, s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Corollary 3's Zbar as printed: ((1+rs)/2 H1+ + (1-rs)/2 H1-, (1+rs)/(2rs) W1+ - (1-rs)/(2rs) W1-)."""
    rs = np.sqrt(s)
    (H1p, W1p), (H1m, W1m) = modes.parts["E1+"], modes.parts["E1-"]
    return ((1 + rs) / 2 * H1p + (1 - rs) / 2 * H1m,
            (1 + rs) / (2 * rs) * W1p - (1 - rs) / (2 * rs) * W1m)


def corollary5_limit(modes: Modes, s: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Corollary 5 at lambda = lambda*: H -> H1+ + (1-s)/(1+s) H1-, W -> W1+ - (1-s)/(1+s) W1-."""
    (H1p, W1p), (H1m, W1m) = modes.parts["E1+"], modes.parts["E1-"]
    k = (1 - s) / (1 + s)
    return H1p + k * H1m, W1p - k * W1m


def theorem2_scalars(sigma: float, s: float, zeta: float) -> tuple[float, float]:
    """Theorem 2's scalars as they follow from eq. (6): (cosh x + sqrt(s) sinh x, cosh x + sinh x / sqrt(s)), x = sigma sqrt(s) zeta."""
    x = sigma * np.sqrt(s) * zeta
    return float(np.cosh(x) + np.sqrt(s) * np.sinh(x)), float(np.cosh(x) + np.sinh(x) / np.sqrt(s))


# -- directions and schedules ---------------------------------------------------------------


def direction_error(H: np.ndarray, W: np.ndarray, H_ref: np.ndarray, W_ref: np.ndarray) -> float:
    """|| Z/||Z|| - Zref/||Zref|| ||_F for Z = (H, W) (Corollaries 3 and 5)."""
    Z = unit(np.concatenate([H.ravel(), W.ravel()]))
    R = unit(np.concatenate([H_ref.ravel(), W_ref.ravel()]))
    return float(np.linalg.norm(Z - R))


def unit(X: np.ndarray) -> np.ndarray:
    """X / ||X||_F, scaled by max |X| first so that huge (unregularized) iterates do not overflow."""
    X = X / np.max(np.abs(X))
    return X / np.linalg.norm(X)


def schedule(kind: str, steps: int, milestones: Sequence[float] = (0.5, 0.75), decay: float = 0.1) -> np.ndarray:
    """Learning-rate factors per step: ``constant``, ``cosine`` (to 0 at the end) or ``step``."""
    k = np.arange(steps, dtype=np.float64)
    if kind == "constant":
        return np.ones(steps)
    if kind == "cosine":
        return 0.5 * (1 + np.cos(np.pi * k / steps))
    if kind == "step":
        return decay ** np.searchsorted(np.asarray(milestones) * steps, k, side="right")
    raise ValueError(f"schedule must be constant, cosine or step, got {kind!r}")


# -- Theorem 6: fixed prototypes (PAL) with feature regularization --------------------------


def anchored_target(W: np.ndarray, per_class: int, gamma: float) -> np.ndarray:
    """W M in the (p, CN) layout: the direction H(t) converges to under Theorem 6."""
    return descent_H(W, per_class, gamma)


def anchored_flow(H0: np.ndarray, W: np.ndarray, gamma: float, lam: float, zeta: float) -> np.ndarray:
    """Theorem 6: H(zeta) = e^(-lam zeta) H0 + (1 - e^(-lam zeta))/lam W M (H0 + zeta W M if lam = 0)."""
    target = anchored_target(W, H0.shape[1] // W.shape[0], gamma)
    if lam == 0:
        return H0 + zeta * target
    decay = np.exp(-lam * zeta)
    return decay * H0 + (1 - decay) / lam * target


def anchored_discrete(H0: np.ndarray, W: np.ndarray, gamma: float, lam: float, lrs: ArrayLike) -> np.ndarray:
    """Exact gradient descent on H with W fixed: prod(1 - lr lam) H0 + (1 - prod(1 - lr lam))/lam W M."""
    lrs = np.asarray(lrs, dtype=np.float64)
    target = anchored_target(W, H0.shape[1] // W.shape[0], gamma)
    if lam == 0:
        return H0 + lrs.sum() * target
    decay = np.prod(1.0 - lrs * lam)
    return decay * H0 + (1 - decay) / lam * target


# -- Theorem 7 / Lemma 10: normalized features with a fixed zero-mean classifier ------------


def spherical_objective(H: np.ndarray, W: np.ndarray, gamma: float) -> float:
    """Eq. (18): -(1+gamma)/(CN) sum_{i,c} w_c . h_ic/||h_ic|| (requires sum_c w_c = 0)."""
    C = W.shape[0]
    Hn = H / np.linalg.norm(H, axis=0, keepdims=True)
    own = np.repeat(W, H.shape[1] // C, axis=0).T  # w_{y_n} as columns
    return float(-(1 + gamma) / H.shape[1] * np.sum(own * Hn))


def spherical_descent(H: np.ndarray, W: np.ndarray, gamma: float) -> np.ndarray:
    """-dL/dH of eq. (18): (1+gamma)/(CN ||h||) (I - h_hat h_hat^T) w_c per column (eq. 19)."""
    C = W.shape[0]
    norms = np.linalg.norm(H, axis=0, keepdims=True)
    Hn = H / norms
    own = np.repeat(W, H.shape[1] // C, axis=0).T
    tangent = own - Hn * np.sum(Hn * own, axis=0, keepdims=True)
    return (1 + gamma) / H.shape[1] * tangent / norms


def spherical_gd(H0: np.ndarray, W: np.ndarray, gamma: float, lrs: ArrayLike, rescaled: bool = False,
                 record_every: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Gradient descent on eq. (18); ``rescaled`` multiplies each column's step by ||h_ic|| (RLR, Sec. 4.3).

    Returns the final H and a record (every ``record_every`` steps and at the end) of
    ``step``, ``direction_error`` = ||H_hat - W_hat (I kron 1^T)||_F (column-normalized),
    ``norm`` = ||H||_F, ``min_cos`` and ``accuracy``.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    H = H0.copy()
    own_unit = np.repeat(W / np.linalg.norm(W, axis=1, keepdims=True), H.shape[1] // W.shape[0], axis=0).T
    record: dict[str, list] = {"step": [], "direction_error": [], "norm": [], "min_cos": [], "accuracy": []}

    def log(step: int) -> None:
        Hn = H / np.linalg.norm(H, axis=0, keepdims=True)
        record["step"].append(step)
        record["direction_error"].append(float(np.linalg.norm(Hn - own_unit)))
        record["norm"].append(float(np.linalg.norm(H)))
        record["min_cos"].append(float(np.min(np.sum(Hn * own_unit, axis=0))))
        record["accuracy"].append(accuracy(H, W))

    for k, lr in enumerate(lrs):
        if k % record_every == 0:
            log(k)
        step = spherical_descent(H, W, gamma)
        if rescaled:
            step = step * np.linalg.norm(H, axis=0, keepdims=True)
        H = H + lr * step
    log(len(lrs))
    return H, {k: np.asarray(v) for k, v in record.items()}


def cosine_recursion(beta0: ArrayLike, alpha0: ArrayLike, xi: ArrayLike, rescaled: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Lemma 10 (eq. 84): the cosine beta_t = cos(h_t, w) and the relative step alpha_t.

    beta_{t+1} = (beta + alpha (1 - beta^2)) / sqrt(1 + alpha^2 (1 - beta^2)),
    alpha_{t+1} = xi_t alpha / (1 + alpha^2 (1 - beta^2))        (plain GD, alpha = eta'||w||/||h||^2),
    alpha_{t+1} = xi_t alpha / sqrt(1 + alpha^2 (1 - beta^2))    (RLR: the step is multiplied by ||h||),
    with eta' = (1+gamma) eta/(CN) and xi_t = eta(t+1)/eta(t). Returns arrays of shape (T+1, ...)
    for T = len(xi) steps; ||h_{t+1}||^2 = ||h_t||^2 (1 + alpha_t^2 (1 - beta_t^2)).
    """
    beta = np.asarray(beta0, dtype=np.float64)
    alpha = np.asarray(alpha0, dtype=np.float64)
    betas, alphas = [beta], [alpha]
    for x in np.asarray(xi, dtype=np.float64):
        grow = 1 + alpha**2 * (1 - beta**2)
        beta = (beta + alpha * (1 - beta**2)) / np.sqrt(grow)
        alpha = x * alpha / (np.sqrt(grow) if rescaled else grow)
        betas.append(beta)
        alphas.append(alpha)
    return np.stack(betas), np.stack(alphas)


def spherical_recursion(theta0: ArrayLike, alpha0: ArrayLike, norm0: ArrayLike, xi: ArrayLike,
                        rescaled: bool | ArrayLike = False, record_every: int = 1) -> dict[str, np.ndarray]:
    """Lemma 10 in angle form, stable where the cosine recursion loses digits (beta -> 1).

    A GD step turns h_t towards its prototype by arctan(alpha_t sin theta_t) in their common
    plane: theta_{t+1} = theta_t - arctan(alpha_t sin theta_t), ||h_{t+1}||^2 = ||h_t||^2 (1 + alpha_t^2 sin^2 theta_t),
    and alpha follows :func:`cosine_recursion`. The last axis indexes the columns of H (leading
    axes, e.g. several learning rates, are kept); ``norm0`` holds the columns' initial norms.
    ``rescaled`` (RLR) may be an array over the leading axes, so plain and RLR runs share one loop.
    Returns, at ``step`` = 0, record_every, ... and T, ``error`` = ||H_hat - W_hat (I kron 1^T)||_F
    = sqrt(sum 4 sin^2(theta/2)) and ``norm`` = ||H_t||_F, and the final ``theta``.
    """
    theta = np.array(theta0, dtype=np.float64)
    alpha = np.array(alpha0, dtype=np.float64) * np.ones_like(theta)
    norm2 = np.array(norm0, dtype=np.float64) ** 2 * np.ones_like(theta)
    rescaled = np.asarray(rescaled, dtype=bool)
    rescaled = rescaled.reshape(rescaled.shape + (1,) * (theta.ndim - rescaled.ndim))
    xi = np.asarray(xi, dtype=np.float64)
    steps, errors, norms = [], [], []

    def log(step: int) -> None:
        steps.append(step)
        errors.append(np.sqrt(np.sum(4 * np.sin(theta / 2) ** 2, axis=-1)))
        norms.append(np.sqrt(np.sum(norm2, axis=-1)))

    log(0)
    for t, x in enumerate(xi, start=1):
        turn = alpha * np.sin(theta)
        grow = 1.0 + turn**2
        theta = theta - np.arctan(turn)
        norm2 = norm2 * grow
        alpha = x * alpha / np.where(rescaled, np.sqrt(grow), grow)
        if t % record_every == 0 or t == len(xi):
            log(t)
    return {"step": np.array(steps), "error": np.stack(errors), "norm": np.stack(norms), "theta": theta}


def spherical_start(H0: np.ndarray, W: np.ndarray, gamma: float, lr: float,
                    rescaled: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta0, alpha0, norm0) per column for :func:`spherical_recursion`: the angle to the own
    prototype, alpha0 = (1+gamma) lr ||w||/(CN ||h||^2) (times ||h|| with RLR) and ||h||."""
    own = np.repeat(W, H0.shape[1] // W.shape[0], axis=0).T
    norm_h, norm_w = np.linalg.norm(H0, axis=0), np.linalg.norm(own, axis=0)
    cos = np.clip(np.sum(own * H0, axis=0) / (norm_h * norm_w), -1.0, 1.0)
    # the angle from the cross-product norm too, so that small angles keep their digits
    sin = np.linalg.norm(H0 / norm_h - own / norm_w * cos, axis=0)
    theta = np.arctan2(sin, cos)
    step = (1 + gamma) * lr / H0.shape[1] * (norm_h if rescaled else 1.0)
    return theta, step * norm_w / norm_h**2, norm_h


# -- Theorem 8: constant NTK -> linear dynamics ---------------------------------------------


def ntk_generator(kernel: np.ndarray, num_classes: int, per_class: int, gamma: float) -> np.ndarray:
    """A = [[0, M^T], [M K, 0]]: with h = Theta^T phi(x) and NTK K = Phi^T Phi, Z_{k+1} = Z_k (I + lr A).

    Z = (H, W^T); gradient descent on Theta moves H by lr W^T M K, on W by lr (H M^T)^T.
    """
    C, N = num_classes, per_class
    M = M_matrix(C, N, gamma)
    return np.block([[np.zeros((C * N, C * N)), M.T], [M @ kernel, np.zeros((C, C))]])


# -- Lemma 1 and its erratum: the norm-bounded problem -------------------------------------


def lemma1_paper_value(gamma: float, bound_w: float, bound_h: float) -> float:
    """Lemma 1 as printed: the minimum is -(1+gamma) E_W E_H, attained only at a simplex ETF."""
    return -(1 + gamma) * bound_w * bound_h


def lemma1_value_given_W(W: np.ndarray, gamma: float, bound_h: float) -> float:
    """min over ||h|| <= E_H of the mean loss for fixed W: -(E_H/C) sum_c ||(1+gamma) w_c - gamma sum_j w_j||."""
    v = (1 + gamma) * W - gamma * W.sum(axis=0)
    return float(-bound_h * np.mean(np.linalg.norm(v, axis=1)))


def lemma1_minimum(num_classes: int, gamma: float, bound_w: float, bound_h: float) -> float:
    """The corrected minimum: -(1+gamma) E_W E_H if gamma (C-2) <= 2, else -|1+gamma-gamma C| E_W E_H."""
    if gamma * (num_classes - 2) <= 2:
        return -(1 + gamma) * bound_w * bound_h
    return -abs(1 + gamma - gamma * num_classes) * bound_w * bound_h


def balanced_prototypes(num_classes: int, dim: int, norm: float = 1.0,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """A random W with sum_c w_c = 0 and ||w_c|| = norm that is not a simplex ETF for C >= 4.

    Built from antipodal pairs (u, -u) and, for odd C, one equilateral triangle in a random
    plane: every such W attains Lemma 1's value, so the minimizer is not unique (erratum).
    """
    if num_classes < 2 or dim < 2:
        raise ValueError("need C >= 2 and p >= 2")
    rng = np.random.default_rng(0) if rng is None else rng
    rows = []
    pairs = num_classes // 2 - (1 if num_classes % 2 else 0)
    for _ in range(pairs):
        u = rng.standard_normal(dim)
        u /= np.linalg.norm(u)
        rows += [u, -u]
    if num_classes % 2:
        basis, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
        for angle in (0.0, 2 * np.pi / 3, 4 * np.pi / 3):
            rows.append(np.cos(angle) * basis[:, 0] + np.sin(angle) * basis[:, 1])
    return norm * np.stack(rows)


def pairwise_cosines(W: np.ndarray) -> np.ndarray:
    """The off-diagonal cosines cos(w_i, w_j), i < j."""
    U = W / np.linalg.norm(W, axis=1, keepdims=True)
    G = U @ U.T
    return G[np.triu_indices(len(W), k=1)]

