"""Closed forms of the rooted logistic objective (binary margin form, float64 NumPy).

With margin z = y w^T x and u = e^(-z):

* loss        l_k(z)   = k (1 + u)^(1/k)                     (k = 1: 1 + e^(-z), the exponential loss + 1)
* slope       l_k'(z)  = -(1 + u)^(1/k) sigma(-z)
* curvature   l_k''(z) = sigma(z) sigma(-z) (1 + u)^(1/k) (1 + u/k)
* ratio to logistic curvature  h_k(z) = (1 + u)^(1/k) (1 + u/k) >= 1, decreasing in k

All are evaluated in log space (softplus) so that large |z| neither overflows nor cancels.
The multi-class per-sample gradient weights relative to cross-entropy are
p_y^(-1/k) for the convex form and (m/k) p_y^(1/k) for the official code's GCE form.

Linear models (second part): the objectives L_RLO(w) and L_LO(w) with gradients and Hessians,
their minimizers (SciPy), the hard-margin SVM direction (an independent NNLS solver), and
batched full-batch / mini-batch gradient descent over several losses and step sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit


def softplus(x: ArrayLike) -> np.ndarray:
    """log(1 + e^x) without overflow."""
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def logistic_loss(z: ArrayLike) -> np.ndarray:
    """log(1 + e^(-z))."""
    return softplus(-np.asarray(z, dtype=np.float64))


def logistic_curvature(z: ArrayLike) -> np.ndarray:
    """d^2/dz^2 log(1 + e^(-z)) = sigma(z) sigma(-z)."""
    z = np.asarray(z, dtype=np.float64)
    return expit(z) * expit(-z)


def rooted_loss(z: ArrayLike, k: float) -> np.ndarray:
    """k (1 + e^(-z))^(1/k) = k exp(softplus(-z) / k)."""
    return k * np.exp(softplus(-np.asarray(z, dtype=np.float64)) / k)


def rooted_slope(z: ArrayLike, k: float) -> np.ndarray:
    """d l_k / dz = -(1 + e^(-z))^(1/k) sigma(-z)."""
    z = np.asarray(z, dtype=np.float64)
    return -np.exp(softplus(-z) / k) * expit(-z)


def curvature_ratio(z: ArrayLike, k: float) -> np.ndarray:
    """h_k(z) = (1 + u)^(1/k) (1 + u/k), u = e^(-z): rooted curvature over logistic curvature."""
    z = np.asarray(z, dtype=np.float64)
    return np.exp(softplus(-z) / k) * (1.0 + np.exp(-z) / k)


def rooted_curvature(z: ArrayLike, k: float) -> np.ndarray:
    """d^2 l_k / dz^2 = sigma(z) sigma(-z) h_k(z)."""
    return logistic_curvature(z) * curvature_ratio(z, k)


def log_rooted_curvature(z: ArrayLike, k: float) -> np.ndarray:
    """log l_k''(z), finite where l_k'' itself under- or overflows (|z| in the hundreds).

    log sigma(z) + log sigma(-z) + softplus(-z)/k + log(1 + e^(-z)/k); k = inf is logistic.
    """
    z = np.asarray(z, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    log_one_plus_u_over_k = np.where(np.isinf(k), 0.0, np.logaddexp(0.0, -z - np.log(k)))
    return -softplus(-z) - softplus(z) + softplus(-z) / k + log_one_plus_u_over_k


def weight_convex(p_true: ArrayLike, k: float) -> np.ndarray:
    """Gradient weight of k p_y^(-1/k) relative to cross-entropy: p_y^(-1/k) (>= 1)."""
    return np.asarray(p_true, dtype=np.float64) ** (-1.0 / k)


def weight_gce(p_true: ArrayLike, k: float, m: float) -> np.ndarray:
    """Gradient weight of m (1 - p_y^(1/k)) relative to cross-entropy: (m/k) p_y^(1/k)."""
    return (m / k) * np.asarray(p_true, dtype=np.float64) ** (1.0 / k)


# -- linear models: L(w) = (1/n) sum_i l(y_i w^T x_i) + (l2/2) ||w||^2 ------------------------
#
# ``k=None`` selects the logistic loss l(z) = log(1 + e^(-z)) (L_LO); a number selects the rooted
# loss l_k(z) = k (1 + e^(-z))^(1/k) (L_RLO, the constant k included). Labels are y in {-1, +1}.
# Slopes and curvatures of the logistic loss are the rooted ones at k = inf, which lets the
# batched routines below treat every loss alike.


def _as_k(k: float | None) -> float:
    return np.inf if k is None else float(k)


def _check_pm1(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if not np.all(np.abs(y) == 1.0):
        raise ValueError("labels must be -1 or +1 (convert 0/1 labels with 2 * y - 1)")
    return y


def margins(w: ArrayLike, X: ArrayLike, y: ArrayLike) -> np.ndarray:
    """z_i = y_i w^T x_i."""
    return _check_pm1(y) * (np.asarray(X, dtype=np.float64) @ np.asarray(w, dtype=np.float64))


def _per_sample_loss(z: np.ndarray, k: float | None) -> np.ndarray:
    return logistic_loss(z) if k is None else rooted_loss(z, k)


def objective(w: ArrayLike, X: ArrayLike, y: ArrayLike, k: float | None = None, l2: float = 0.0) -> float:
    """L_RLO(w) (k given) or L_LO(w) (k=None), plus (l2/2)||w||^2."""
    w = np.asarray(w, dtype=np.float64)
    return float(_per_sample_loss(margins(w, X, y), k).mean() + 0.5 * l2 * w @ w)


def gradient(w: ArrayLike, X: ArrayLike, y: ArrayLike, k: float | None = None, l2: float = 0.0) -> np.ndarray:
    """(1/n) sum_i l'(z_i) y_i x_i + l2 w."""
    w, X, y = np.asarray(w, dtype=np.float64), np.asarray(X, dtype=np.float64), _check_pm1(y)
    slope = rooted_slope(y * (X @ w), _as_k(k))
    return X.T @ (slope * y) / len(y) + l2 * w


def curvature_weights(w: ArrayLike, X: ArrayLike, y: ArrayLike, k: float | None = None) -> np.ndarray:
    """c_i = l''(z_i): the Hessian is (1/n) sum_i c_i x_i x_i^T (y_i^2 = 1)."""
    return np.exp(log_rooted_curvature(margins(w, X, y), _as_k(k)))


def hessian(w: ArrayLike, X: ArrayLike, y: ArrayLike, k: float | None = None, l2: float = 0.0) -> np.ndarray:
    """(1/n) X^T diag(l''(z)) X + l2 I."""
    X = np.asarray(X, dtype=np.float64)
    c = curvature_weights(w, X, y, k)
    return (X * c[:, None]).T @ X / len(c) + l2 * np.eye(X.shape[1])


def minimize(X: ArrayLike, y: ArrayLike, k: float | None = None, l2: float = 0.0, *,
             method: str = "trust-exact", gtol: float = 1e-10, max_iter: int = 1000,
             w0: ArrayLike | None = None):
    """Minimize L_RLO / L_LO (+ l2) from w0 = 0 with SciPy; returns the ``OptimizeResult``.

    ``trust-exact`` (Newton with the exact Hessian) gives minimizers to ``gtol`` where a finite
    one exists (non-separable data, or l2 > 0). On separable data without l2 no minimizer
    exists, and a fixed budget (``method="L-BFGS-B"``, ``max_iter``) defines the solution.
    """
    from scipy.optimize import minimize as scipy_minimize

    X, y = np.asarray(X, dtype=np.float64), _check_pm1(y)
    start = np.zeros(X.shape[1]) if w0 is None else np.asarray(w0, dtype=np.float64)
    options = {"gtol": gtol, "maxiter": max_iter}
    if method == "L-BFGS-B":
        options["ftol"] = 1e-15  # stop on the gradient, not on a stalled objective
    hess = hessian if method in ("trust-exact", "trust-krylov", "Newton-CG") else None
    result = scipy_minimize(_objective_minus_k, start, args=(X, y, k, l2), jac=True, hess=hess,
                            method=method, options=options)
    if hess is not None:
        # Near the optimum the trust region compares objective decreases below float64
        # resolution and gives up with a gradient of ~1e-8; a few pure Newton steps, which
        # converge quadratically there, bring it to gtol.
        w = result.x
        for _ in range(5):
            g = gradient(w, X, y, k, l2)
            if np.linalg.norm(g) <= gtol:
                break
            w = w - np.linalg.solve(hessian(w, X, y, k, l2), g)
        result.x, result.jac = w, gradient(w, X, y, k, l2)
        result.success = bool(np.linalg.norm(result.jac) <= gtol)
    return result


def _objective_minus_k(w: np.ndarray, X: np.ndarray, y: np.ndarray, k: float | None,
                       l2: float) -> tuple[float, np.ndarray]:
    """The objective less the constant k, and its gradient, from one pass over the margins.

    expm1 keeps the digits that the optimizers compare: their decreases are tiny next to k."""
    # a line search may try a huge w: the objective is then inf, which makes it backtrack
    with np.errstate(over="ignore", invalid="ignore"):
        z = y * (X @ w)
        s = softplus(-z)
        if k is None:
            per_sample, slope = s, -np.exp(-z - s)  # sigma(-z) = exp(-z - softplus(-z))
        else:
            per_sample, slope = k * np.expm1(s / k), -np.exp(s / k - z - s)
        value = float(per_sample.mean() + 0.5 * l2 * w @ w)
        return value, X.T @ (slope * y) / len(y) + l2 * w


def max_margin(X: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Hard-margin SVM through the origin: argmin ||w|| subject to y_i w^T x_i >= 1.

    Solved as a least-distance program by non-negative least squares (Lawson & Hanson,
    *Solving Least Squares Problems*, ch. 23): with G = diag(y) X, solve
    min_{u >= 0} ||[G^T; 1^T] u - e_{d+1}||; the residual r gives w = -r_{1..d} / r_{d+1}.
    This is independent of gradient descent. Raises ``ValueError`` when no such w exists.
    """
    from scipy.optimize import nnls

    X, y = np.asarray(X, dtype=np.float64), _check_pm1(y)
    n, d = X.shape
    E = np.vstack([(y[:, None] * X).T, np.ones((1, n))])
    f = np.zeros(d + 1)
    f[-1] = 1.0
    u, _ = nnls(E, f, maxiter=50 * (n + d))
    r = E @ u - f
    if abs(r[-1]) < 1e-12:
        raise ValueError("the data are not linearly separable through the origin")
    return -r[:d] / r[-1]


def angle_degrees(u: ArrayLike, v: ArrayLike) -> np.ndarray:
    """Angle between u and v in degrees (rows of a 2-D ``u`` each against ``v``)."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    cos = (u @ v) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def normalized_margin(w: ArrayLike, X: ArrayLike, y: ArrayLike) -> float:
    """min_i y_i w^T x_i / ||w||."""
    w = np.asarray(w, dtype=np.float64)
    return float(margins(w, X, y).min() / np.linalg.norm(w))


# -- (stochastic) gradient descent on many losses at once ---------------------------------------


@dataclass(frozen=True)
class Trace:
    """Gradient-descent runs of several (loss, step) pairs on one data set.

    Row j uses root order ``ks[j]`` (None = logistic) and step ``steps[j]``. ``objective`` and
    ``errors`` (training points with margin <= 0, NaN counted as wrong) are over the full
    training set at iterates 0..T; ``weights[r, j]`` is row j's iterate at ``record[r]``.
    """

    ks: tuple[float | None, ...]
    steps: np.ndarray
    objective: np.ndarray
    errors: np.ndarray
    record: np.ndarray
    weights: np.ndarray

    def first(self, reached: np.ndarray) -> np.ndarray:
        """Per row, the first iteration where the boolean (T+1, rows) array holds; -1 if never."""
        hit = reached.any(axis=0)
        return np.where(hit, reached.argmax(axis=0), -1)

    def iterations_to_zero_error(self) -> np.ndarray:
        return self.first(self.errors == 0)

    def iterations_to_gap(self, optimum: ArrayLike, tol: float) -> np.ndarray:
        """First iteration with (L(w_t) - L*) <= tol (L(w_0) - L*), per row."""
        optimum = np.asarray(optimum, dtype=np.float64)
        gap = (self.objective - optimum) / (self.objective[0] - optimum)
        return self.first(np.isfinite(gap) & (gap <= tol))


def gradient_descent(X: ArrayLike, y: ArrayLike, ks: Sequence[float | None], steps: ArrayLike,
                     iterations: int, *, batch_size: int | None = None, seed: int = 0,
                     record: Sequence[int] = (), l2: float = 0.0,
                     stop_when: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> Trace:
    """Run w <- w - step * grad from w = 0 for every (k, step) row at once, float64.

    ``batch_size=None`` is full-batch gradient descent; otherwise each step uses a mini-batch
    drawn without replacement from a per-epoch seeded permutation shared by all rows (common
    random numbers, so rows differ only by loss and step). A diverging row turns into inf/NaN
    and is reported as such (errors count NaN margins as wrong); it never stops the others.
    ``stop_when(objective_t, errors_t)`` returns, per row, whether that row has reached its
    target; the run ends early once every row has reached it at least once or diverged, and
    the trace then holds only the iterations run.
    """
    X, y = np.asarray(X, dtype=np.float64), _check_pm1(y)
    n, d = X.shape
    ks = tuple(ks)
    steps = np.broadcast_to(np.asarray(steps, dtype=np.float64), (len(ks),)).copy()
    k_row = np.array([_as_k(k) for k in ks])
    rooted_rows = np.isfinite(k_row)  # the other rows are logistic (k = inf)
    record = np.array(sorted(set(int(r) for r in record if 0 <= r <= iterations)), dtype=int)
    record_set = set(record.tolist())
    W = np.zeros((len(ks), d))
    objective_hist = np.empty((iterations + 1, len(ks)))
    error_hist = np.empty((iterations + 1, len(ks)), dtype=np.int64)
    weights = np.empty((len(record), len(ks), d))
    rng = np.random.default_rng(seed)
    order, cursor = np.arange(n), n
    Xy = X * y[:, None]
    finished = np.zeros(len(ks), dtype=bool)

    def slope_terms(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """softplus(-z), (1 + e^(-z))^(1/k) and l'(z) = -(1 + e^(-z))^(1/k) sigma(-z), from one logaddexp."""
        s = np.logaddexp(0.0, -z)
        root = np.exp(s / k_row)
        return s, root, -root * np.exp(-z - s)  # sigma(-z) = exp(-z - softplus(-z))

    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(iterations + 1):
            z = Xy @ W.T  # (n, rows) margins of the full training set
            s, root, slope = slope_terms(z)
            loss = np.where(rooted_rows, k_row * root, s).mean(axis=0)
            objective_hist[t] = loss + 0.5 * l2 * np.einsum("jd,jd->j", W, W)
            error_hist[t] = (~(z > 0)).sum(axis=0)
            if t in record_set:
                weights[np.searchsorted(record, t)] = W
            if stop_when is not None:
                finished |= stop_when(objective_hist[t], error_hist[t]) | ~np.isfinite(objective_hist[t])
                if finished.all():
                    objective_hist, error_hist = objective_hist[:t + 1], error_hist[:t + 1]
                    kept = record <= t
                    record, weights = record[kept], weights[kept]
                    break
            if t == iterations:
                break
            if batch_size is None:
                Xb = Xy
            else:
                if cursor + batch_size > n:
                    order, cursor = rng.permutation(n), 0
                Xb, cursor = Xy[order[cursor:cursor + batch_size]], cursor + batch_size
                slope = slope_terms(Xb @ W.T)[2]
            W = W - steps[:, None] * (slope.T @ Xb / len(Xb) + l2 * W)
    return Trace(ks, steps, objective_hist, error_hist, record, weights)
