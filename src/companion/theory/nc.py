"""Closed forms of the neural-collapse (NC) optimum of the unconstrained-features model (UFM).

Setting (nc_losses digest §1.1): K classes, n samples per class, N = nK, and

    f(W, H, b) = (1/N) sum_i L(W h_i + b, y_i) + lambda_W/2 |W|^2 + lambda_H/2 |H|^2 + lambda_b/2 |b|^2.

The losses are the companion's (``companion.losses``): ``ce``; ``ls`` (alpha); ``focal``
(gamma, the paper's beta); ``mse`` (scale M) in the companion's convention
(1/K)|z - M e_y|^2, i.e. c_L/2 |z - M e_y|^2 with c_L = 2/K.

Everything here is **our derivation** (digest §2.2-2.3, tagged [derived]), consistent with the
paper's abstract but not its text, which we could not read. At an NC point (h_i = c w^{y_i},
rows of W a simplex ETF with |w^k|^2 = s, b = beta 1) every sample's logits are
t (e_y - 1/K) + beta 1 with margin t = c s K/(K-1), and the regularizer at the best c equals
(K-1) gamma t with

    gamma = sqrt(n lambda_W lambda_H),   c = sqrt(lambda_W / (n lambda_H)),   s = t (K-1)/(c K).

The scale therefore solves the scalar problem  min_{t >= 0} l(t) + (K-1) gamma t, with l(t) the
per-sample loss at margin t. Closed forms: CE t* = log(1/gamma - (K-1)); LS
t* = log(1/(gamma + alpha/K) - (K-1)); MSE t* = M - K^2 gamma / 2 and bias beta* =
(M/K)/(1 + K lambda_b/2); FL needs a 1-D solve. From a threshold gamma_0 on, the optimum is
W = H = 0 ("trivial"). In code gamma is called ``reg``, because ``gamma`` is the focal
parameter of ``companion.losses``. The lower bounds phi(u) of §2.2 are l evaluated at u = -(K-1) t, with
u = sum_{j != y} (z_j - z_y).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize
from scipy.special import expit

LOSSES = ("ce", "ls", "focal", "mse")
SOFTMAX_LOSSES = ("ce", "ls", "focal")
# grid on which the focal-loss 1-D problems are bracketed before scipy refines them
_FOCAL_GRID = np.linspace(0.0, 64.0, 6401)


def _params(loss: str, params: dict) -> dict:
    """The loss parameters with the companion's defaults, validated."""
    defaults = {"ce": {}, "ls": {"alpha": 0.1}, "focal": {"gamma": 3.0}, "mse": {"scale": 1.0}}
    if loss not in defaults:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    unknown = set(params) - set(defaults[loss])
    if unknown:
        raise ValueError(f"loss {loss!r} takes {sorted(defaults[loss])}, got {sorted(unknown)}")
    merged = {**defaults[loss], **params}
    if loss == "ls" and not 0.0 <= merged["alpha"] < 1.0:
        raise ValueError(f"alpha must lie in [0, 1), got {merged['alpha']}")
    if loss == "focal" and merged["gamma"] < 0:
        raise ValueError(f"focal gamma must be >= 0, got {merged['gamma']}")
    if loss == "mse" and merged["scale"] <= 0:
        raise ValueError(f"mse scale must be > 0, got {merged['scale']}")
    return merged


def regularization_strength(per_class: int, lambda_w: float, lambda_h: float) -> float:
    """gamma = sqrt(n lambda_W lambda_H): the price per unit margin of the regularizer."""
    return math.sqrt(per_class * lambda_w * lambda_h)


def feature_scale(per_class: int, lambda_w: float, lambda_h: float) -> float:
    """c = sqrt(lambda_W / (n lambda_H)): h* = c w*^k, so |h*|^2 / |w*|^2 = c^2."""
    return math.sqrt(lambda_w / (per_class * lambda_h))


# -- the per-sample loss at margin t (logits t (e_y - 1/K)) ----------------------------------


def margin_loss(loss: str, t: ArrayLike, num_classes: int, **params: float) -> np.ndarray:
    """l(t): the loss of logits t (e_y - 1/K). For ``mse`` the zero-mean part only.

    (For MSE the logit mean beta adds (beta - M/K)^2, see :func:`optimal_bias`.)
    """
    p = _params(loss, params)
    t = np.asarray(t, dtype=np.float64)
    k = num_classes
    shift = math.log(k - 1) - t  # log((K-1) e^{-t}); -log p_y = softplus(shift)
    nll = np.logaddexp(0.0, shift)
    if loss == "ce":
        return nll
    if loss == "ls":
        return nll + p["alpha"] * (k - 1) * t / k
    if loss == "focal":
        return expit(shift) ** p["gamma"] * nll  # (1 - p_y)^beta (-log p_y)
    return (k - 1) * (t - p["scale"]) ** 2 / k**2


def margin_loss_slope(loss: str, t: ArrayLike, num_classes: int, **params: float) -> np.ndarray:
    """l'(t)."""
    p = _params(loss, params)
    t = np.asarray(t, dtype=np.float64)
    k = num_classes
    shift = math.log(k - 1) - t
    wrong = expit(shift)  # 1 - p_y
    if loss == "ce":
        return -wrong
    if loss == "ls":
        return -wrong + p["alpha"] * (k - 1) / k
    if loss == "focal":
        beta, right = p["gamma"], expit(-shift)
        log_right = -np.logaddexp(0.0, shift)
        return wrong**beta * (beta * right * log_right - wrong)
    return 2 * (k - 1) * (t - p["scale"]) / k**2


def margin_loss_curvature(loss: str, t: ArrayLike, num_classes: int, **params: float) -> np.ndarray:
    """l''(t); negative values mark where the 1-D focal problem is concave."""
    p = _params(loss, params)
    t = np.asarray(t, dtype=np.float64)
    k = num_classes
    shift = math.log(k - 1) - t
    wrong, right = expit(shift), expit(-shift)
    if loss in ("ce", "ls"):
        return right * wrong
    if loss == "focal":
        beta = p["gamma"]
        log_right = -np.logaddexp(0.0, shift)
        return right * wrong**beta * (beta * log_right * (wrong - beta * right) + wrong * (2 * beta + 1))
    return np.full_like(t, 2 * (k - 1) / k**2)


# -- the lower bounds phi of §2.2 --------------------------------------------------------------


def margin_sum(logits: ArrayLike, labels: ArrayLike) -> np.ndarray:
    """u = sum_{j != y} (z_j - z_y) for each row of ``logits``."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels)
    return z.sum(axis=1) - z.shape[1] * z[np.arange(len(y)), y]


def lower_bound(loss: str, u: ArrayLike, num_classes: int, **params: float) -> np.ndarray:
    """phi(u) <= L(z, y) for every z with margin sum u; equality iff all z_j (j != y) are equal.

    Defined for the softmax losses (AM-GM on sum_{j != y} e^{z_j - z_y}); it is the per-sample
    loss at the equal-non-target logits with margin t = -u/(K-1).
    """
    if loss not in SOFTMAX_LOSSES:
        raise ValueError(f"lower bounds are defined for {SOFTMAX_LOSSES}, got {loss!r}")
    return margin_loss(loss, -np.asarray(u, dtype=np.float64) / (num_classes - 1), num_classes, **params)


# -- the scalar problem min_t l(t) + (K-1) gamma t -------------------------------------------


def scalar_objective(loss: str, t: ArrayLike, num_classes: int, reg: float, **params: float) -> np.ndarray:
    """F(t) = l(t) + (K-1) reg t, reg = gamma = sqrt(n lambda_W lambda_H): the UFM objective
    along NC points of margin t (bias apart)."""
    return margin_loss(loss, t, num_classes, **params) + (num_classes - 1) * reg * np.asarray(t, dtype=np.float64)


def _focal_optimal_margin(num_classes: int, reg: float, beta: float) -> float:
    """Global minimizer of F over t >= 0 for focal loss: every local minimum on a grid, refined."""
    if reg <= 0:
        return math.inf
    k = num_classes

    def slope(t):
        return float(margin_loss_slope("focal", t, k, gamma=beta)) + (k - 1) * reg

    grid = _FOCAL_GRID
    while slope(grid[-1]) < 0:  # tiny gamma: the minimizer lies beyond the grid
        grid = np.linspace(0.0, 2 * grid[-1], len(grid))
        if grid[-1] > 1e5:
            raise ValueError(f"no finite focal optimum found for reg={reg}")
    slopes = margin_loss_slope("focal", grid, k, gamma=beta) + (k - 1) * reg
    candidates = [0.0]
    for i in np.flatnonzero((slopes[:-1] < 0) & (slopes[1:] >= 0)):  # F' crosses - to +: local min
        candidates.append(optimize.brentq(slope, grid[i], grid[i + 1], xtol=1e-14, rtol=1e-15))
    values = [float(scalar_objective("focal", c, k, reg, gamma=beta)) for c in candidates]
    return candidates[int(np.argmin(values))]


def optimal_margin(loss: str, num_classes: int, reg: float, **params: float) -> float:
    """t* = argmin_{t >= 0} l(t) + (K-1) reg t, reg = gamma = sqrt(n lambda_W lambda_H)
    (t* = 0 is the trivial solution W = H = 0; inf for CE and focal loss at reg = 0)."""
    p = _params(loss, params)
    k = num_classes
    if loss == "focal":
        return _focal_optimal_margin(k, reg, p["gamma"])
    if loss == "mse":
        return max(0.0, p["scale"] - k**2 * reg / 2)
    wrong_prob = reg + (p["alpha"] / k if loss == "ls" else 0.0)  # optimal wrong-class probability
    if wrong_prob <= 0:
        return math.inf  # CE without regularization: the margin grows without bound
    return max(0.0, math.log(1 / wrong_prob - (k - 1))) if wrong_prob < 1 / k else 0.0


def saddle_threshold(loss: str, num_classes: int, **params: float) -> float:
    """gamma_s = -l'(0)/(K-1): for gamma < gamma_s the origin W = H = 0 is a strict saddle.

    CE 1/K, LS (1-alpha)/K, MSE 2M/K^2, FL ((1-1/K)^beta + (beta/K)(1-1/K)^(beta-1) log K)/K.
    """
    return float(-margin_loss_slope(loss, 0.0, num_classes, **params)) / (num_classes - 1)


def trivial_threshold(loss: str, num_classes: int, **params: float) -> float:
    """gamma_0 = sup_{t > 0} (l(0) - l(t)) / ((K-1) t): for gamma >= gamma_0 the optimum is W = H = 0.

    For the convex l of CE, LS and MSE the sup is the slope at 0, so gamma_0 equals
    :func:`saddle_threshold`; for focal loss with many classes l is concave near 0 and
    gamma_0 is larger (between the two the origin is a non-global local minimizer).
    """
    p = _params(loss, params)
    k = num_classes
    if loss != "focal":
        return saddle_threshold(loss, k, **params)
    l0 = float(margin_loss("focal", 0.0, k, gamma=p["gamma"]))

    def secant(t):
        return (l0 - float(margin_loss("focal", t, k, gamma=p["gamma"]))) / ((k - 1) * t)

    grid = _FOCAL_GRID[1:]
    secants = (l0 - margin_loss("focal", grid, k, gamma=p["gamma"])) / ((k - 1) * grid)
    i = int(np.argmax(secants))
    if i == 0:  # the sup is the limit t -> 0: the slope at the origin
        return max(saddle_threshold("focal", k, gamma=p["gamma"]), float(secants[0]))
    res = optimize.minimize_scalar(lambda t: -secant(t), bounds=(grid[i - 1], grid[i + 1]),
                                   method="bounded", options={"xatol": 1e-12})
    return max(float(secants[i]), -float(res.fun))


def optimal_bias(loss: str, num_classes: int, lambda_b: float, **params: float) -> float:
    """beta* of b* = beta* 1: 0 for the softmax losses, (M/K)/(1 + K lambda_b/2) for MSE.

    Softmax losses are shift invariant: with lambda_b = 0 every constant bias is optimal and we
    return 0.
    """
    p = _params(loss, params)
    if loss in SOFTMAX_LOSSES:
        return 0.0
    return (p["scale"] / num_classes) / (1 + num_classes * lambda_b / 2)


def origin_hessian_min_eigenvalue(loss: str, num_classes: int, per_class: int,
                                  lambda_w: float, lambda_h: float, **params: float) -> float:
    """Smallest eigenvalue of the UFM Hessian in (W, H) at the critical point W = H = 0, b = b*.

    There the loss gradient is G = -omega (Y - 1 1^T/K) up to a constant row (sigma_max(G) =
    omega sqrt(n)), the loss Hessian contributes only the bilinear term <G, W H>/N, and the
    block [[lambda_W, B], [B^T, lambda_H]] with |B| = gamma_s / sqrt(n) has smallest eigenvalue
    (lambda_W + lambda_H)/2 - sqrt(((lambda_W - lambda_H)/2)^2 + gamma_s^2 / n), negative iff
    gamma < gamma_s (:func:`saddle_threshold`). Independent of the feature dimension.
    """
    sigma = saddle_threshold(loss, num_classes, **params) / math.sqrt(per_class)
    return (lambda_w + lambda_h) / 2 - math.sqrt(((lambda_w - lambda_h) / 2) ** 2 + sigma**2)


def nc2_lower_bound(num_classes: int, dim: int) -> float:
    """Smallest NC2 distance |A/|A| - P/|P|| of any rank-<=d Gram A to the ETF Gram P, d < K-1.

    <A, P> <= tr A <= sqrt(d) |A|, so the distance is at least sqrt(2 - 2 sqrt(d/(K-1))),
    attained by a rank-d orthogonal projection inside 1^perp; 0 when d >= K-1.
    """
    if dim >= num_classes - 1:
        return 0.0
    return math.sqrt(2 - 2 * math.sqrt(dim / (num_classes - 1)))


# -- the whole optimum ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NCOptimum:
    """The global minimizer of the UFM predicted by the closed forms (our derivation)."""

    loss: str
    params: dict = field(repr=False)
    num_classes: int
    per_class: int
    lambda_w: float
    lambda_h: float
    lambda_b: float
    reg: float  # gamma = sqrt(n lambda_W lambda_H)
    margin: float  # t* = z_y - z_j for every j != y
    w_norm_sq: float  # |w*^k|^2 for every class k
    h_norm_sq: float  # |h*_i|^2 for every sample
    bias: float  # b* = bias * 1
    objective: float  # f(W*, H*, b*)

    @property
    def trivial(self) -> bool:
        """True when the optimum is W = H = 0 (too much weight decay)."""
        return self.margin == 0.0

    @property
    def feature_to_classifier_ratio(self) -> float:
        """|h*|^2 / |w*|^2 = lambda_W / (n lambda_H)."""
        return self.lambda_w / (self.per_class * self.lambda_h)


def optimum(loss: str, num_classes: int, per_class: int, lambda_w: float, lambda_h: float,
            lambda_b: float = 0.0, **params: float) -> NCOptimum:
    """The NC global minimizer of the UFM for ``loss``: margin, norms, bias and optimal value."""
    p = _params(loss, params)
    k = num_classes
    reg = regularization_strength(per_class, lambda_w, lambda_h)
    c = feature_scale(per_class, lambda_w, lambda_h)
    t = optimal_margin(loss, k, reg, **p)
    s = t * (k - 1) / (c * k)
    beta = optimal_bias(loss, k, lambda_b, **p)
    value = float(scalar_objective(loss, t, k, reg, **p))
    if loss == "mse":  # the logit mean adds (beta - M/K)^2 per sample, the bias decay lambda_b K beta^2 / 2
        value += (beta - p["scale"] / k) ** 2 + lambda_b * k * beta**2 / 2
    return NCOptimum(loss=loss, params=p, num_classes=k, per_class=per_class, lambda_w=lambda_w,
                     lambda_h=lambda_h, lambda_b=lambda_b, reg=reg, margin=t, w_norm_sq=s,
                     h_norm_sq=c**2 * s, bias=beta, objective=value)


def nc_solution(opt: NCOptimum, etf: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W*, H*, b*) of ``opt`` built on ``etf`` (K x d simplex ETF with unit rows, e.g.
    ``companion.metrics.simplex_etf``); H is d x N, class-major (n columns per class)."""
    etf = np.asarray(etf, dtype=np.float64)
    w = math.sqrt(opt.w_norm_sq) * etf
    c = feature_scale(opt.per_class, opt.lambda_w, opt.lambda_h)
    h = c * np.repeat(w, opt.per_class, axis=0).T
    b = np.full(opt.num_classes, opt.bias)
    return w, h, b
