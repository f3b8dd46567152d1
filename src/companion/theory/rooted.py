"""Closed forms of the rooted logistic objective (binary margin form, float64 NumPy).

With margin z = y w^T x and u = e^(-z):

* loss        l_k(z)   = k (1 + u)^(1/k)                     (k = 1: 1 + e^(-z), the exponential loss + 1)
* slope       l_k'(z)  = -(1 + u)^(1/k) sigma(-z)
* curvature   l_k''(z) = sigma(z) sigma(-z) (1 + u)^(1/k) (1 + u/k)
* ratio to logistic curvature  h_k(z) = (1 + u)^(1/k) (1 + u/k) >= 1, decreasing in k

All are evaluated in log space (softplus) so that large |z| neither overflows nor cancels.
The multi-class per-sample gradient weights relative to cross-entropy are
p_y^(-1/k) for the convex form and (m/k) p_y^(1/k) for the official code's GCE form.
"""

from __future__ import annotations

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


def weight_convex(p_true: ArrayLike, k: float) -> np.ndarray:
    """Gradient weight of k p_y^(-1/k) relative to cross-entropy: p_y^(-1/k) (>= 1)."""
    return np.asarray(p_true, dtype=np.float64) ** (-1.0 / k)


def weight_gce(p_true: ArrayLike, k: float, m: float) -> np.ndarray:
    """Gradient weight of m (1 - p_y^(1/k)) relative to cross-entropy: (m/k) p_y^(1/k)."""
    return (m / k) * np.asarray(p_true, dtype=np.float64) ** (1.0 / k)
