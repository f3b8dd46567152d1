"""Dynamical loss functions (Ruiz-Garcia, Zhang, Schoenholz, Liu, ICML 2021): closed forms and tools.

The paper's notebooks need four small pieces of theory and two time-series tools:

* **Schedule peaks.** With the official schedule (``companion.losses.DynamicalWeights``) the
  emphasized class's weight peaks at Gamma_c = C A / (C - 1 + A), the others at C / (C - 1 + A).
* **Stability threshold** [ours, derived]. Gradient descent x <- x - eta H x on a quadratic of
  curvature lambda multiplies the error by 1 - eta lambda, so it converges iff 0 < lambda < 2/eta.
  The paper says the bifurcations start when the top Hessian eigenvalue "crosses a threshold"
  (README); that this threshold is 2/eta is our derivation, not a statement of the paper.
* **Double-well toy map** [ours]. GD with step eta on Gamma (x^2 - 1)^2 / 4 is
  x <- x - a x (x^2 - 1) with a = eta Gamma. The minima x = +-1 have curvature lambda = 2 Gamma,
  so eta lambda = 2a, and the fixed point loses stability at a = 1 (eta lambda = 2), where the
  map period-doubles: 1 -> 2 -> 4 -> ... -> chaos as a grows, the cascade the paper sees in
  F(t) - F(t-1) when Gamma(t) drives the curvature past 2/eta.
* **Period detection** of an orbit, and of a loss time series: the onset of a sustained
  period-2 oscillation (F(t) - F(t-1) alternating in sign), the regime of successive windows
  (smooth, period 2, period 4 or a band), first threshold crossings and the number of branches
  of a set of values (1, 2, 4, ... or a band).

Everything here is float64 NumPy.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

# -- schedule and stability ------------------------------------------------------------------


def peak_weights(num_classes: int, amplitude: float) -> tuple[float, float]:
    """(Gamma of the emphasized class, Gamma of every other class) at the top of the triangle.

    The raw weights (1, ..., A, ..., 1) are renormalized to sum to C: C A / (C - 1 + A) and
    C / (C - 1 + A); for C = 3, A = 70 that is 210/72 and 3/72.
    """
    if num_classes < 2 or amplitude < 1:
        raise ValueError(f"need num_classes >= 2 and amplitude >= 1, got {num_classes}, {amplitude}")
    total = num_classes - 1 + amplitude
    return num_classes * amplitude / total, num_classes / total


def official_last_period_plain(total_steps: int, period: int) -> bool:
    """Whether the official loop's ``last_period_no_osc`` makes the final period plain.

    The official notebook starts a new period when its counter passes T (periods of T + 1
    steps) and sets A = 1 at a rollover only after step ``total_time - T``: the final period is
    plain only if it starts at step ``total_time - T + 2`` or later, i.e. lasts at most T - 2
    steps (Fig. 4's 70,000 steps with T = 5000: a last period of 4,987 steps, plain). A run of
    whole periods of T + 1 steps, as ``DynamicalWeights(..., last_period_plain=True)`` makes
    plain (our protocol in the zoo notebooks), gets no plain period under the official rule.
    """
    if total_steps < 1 or period < 1:
        raise ValueError(f"need total_steps >= 1 and period >= 1, got {total_steps}, {period}")
    last_start = (total_steps - 1) // (period + 1) * (period + 1)
    return last_start > 0 and last_start - 1 > total_steps - period


def stability_threshold(lr: float) -> float:
    """2 / eta: the largest curvature on which gradient descent with step ``lr`` is stable [ours]."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    return 2.0 / lr


def gd_quadratic_factor(curvature: ArrayLike, lr: float) -> np.ndarray:
    """1 - eta lambda: the factor GD multiplies the distance to a quadratic's minimum by per step."""
    return 1.0 - lr * np.asarray(curvature, dtype=np.float64)


# -- the double-well toy map -----------------------------------------------------------------


def double_well_loss(x: ArrayLike, gamma: float = 1.0) -> np.ndarray:
    """Gamma (x^2 - 1)^2 / 4: two minima at +-1 with curvature 2 Gamma."""
    x = np.asarray(x, dtype=np.float64)
    return gamma * (x * x - 1.0) ** 2 / 4.0


def double_well_step(x: ArrayLike, a: ArrayLike) -> np.ndarray:
    """One GD step on the double well with a = eta Gamma: x - a x (x^2 - 1)."""
    x = np.asarray(x, dtype=np.float64)
    return x - np.asarray(a, dtype=np.float64) * x * (x * x - 1.0)


def double_well_lr_curvature(a: ArrayLike) -> np.ndarray:
    """eta lambda at the minima for a = eta Gamma: 2a (the first period doubling is at a = 1)."""
    return 2.0 * np.asarray(a, dtype=np.float64)


def double_well_orbit(a: ArrayLike, *, x0: float = 0.5, burn_in: int = 2000,
                      keep: int = 64) -> np.ndarray:
    """The ``keep`` iterates after ``burn_in`` steps from ``x0``, for every a at once.

    Returns shape (len(a), keep). Valid for 0 < a < ~1.5 with |x0| < 1 (larger a escapes).
    """
    a = np.atleast_1d(np.asarray(a, dtype=np.float64))
    x = np.full(a.shape, float(x0))
    for _ in range(burn_in):
        x = double_well_step(x, a)
    orbit = np.empty(a.shape + (keep,))
    for i in range(keep):
        x = double_well_step(x, a)
        orbit[..., i] = x
    return orbit


def double_well_driven(a_of_t: ArrayLike, *, x0: float = 0.5) -> np.ndarray:
    """Iterates of the map with a time-varying a_t (a slowly ramped Gamma(t)); same length as a_of_t."""
    a_of_t = np.asarray(a_of_t, dtype=np.float64)
    out = np.empty_like(a_of_t)
    x = float(x0)
    for t, a in enumerate(a_of_t):
        x = x - a * x * (x * x - 1.0)
        out[t] = x
    return out


def attractor_period(orbit: ArrayLike, *, max_period: int = 32, tol: float = 1e-8) -> int:
    """The smallest p <= max_period with orbit[t + p] == orbit[t] (within tol) over the whole
    window; 0 when there is none (chaos, or a period longer than max_period)."""
    orbit = np.asarray(orbit, dtype=np.float64)
    scale = max(1.0, float(np.abs(orbit).max(initial=0.0)))
    for p in range(1, min(max_period, len(orbit) - 1) + 1):
        if np.all(np.abs(orbit[p:] - orbit[:-p]) <= tol * scale):
            return p
    return 0


def bifurcation_diagram(a_values: ArrayLike, *, x0: float = 0.5, burn_in: int = 2000,
                        keep: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Points (a, x) of the attractor for a scatter plot: ``keep`` iterates per value of a."""
    a_values = np.asarray(a_values, dtype=np.float64)
    orbit = double_well_orbit(a_values, x0=x0, burn_in=burn_in, keep=keep)
    return np.repeat(a_values, keep), orbit.reshape(-1)


# -- time-series tools -------------------------------------------------------------------------


def alternating(differences: ArrayLike, *, tol: float = 0.0) -> np.ndarray:
    """alt[t] = True when differences[t] and differences[t + 1] have opposite signs and both
    exceed ``tol`` in size (length len(differences) - 1): the signature of a period-2 cycle."""
    d = np.asarray(differences, dtype=np.float64)
    big = np.abs(d) > tol
    return (d[1:] * d[:-1] < 0) & big[1:] & big[:-1]


def period_two_onset(values: ArrayLike, *, window: int = 50, fraction: float = 0.9,
                     tol: float = 1e-12, start: int = 0) -> int | None:
    """The first index i >= start from which the differences of ``values`` alternate in sign
    in at least ``fraction`` of the next ``window`` consecutive pairs (a sustained 2-cycle or a
    chaotic band); None if that never happens.

    ``values`` is a time series sampled every step (e.g. the loss F(t)); the index refers to it.
    """
    if window < 1 or not 0 < fraction <= 1:
        raise ValueError(f"need window >= 1 and 0 < fraction <= 1, got {window}, {fraction}")
    alt = alternating(np.diff(np.asarray(values, dtype=np.float64)), tol=tol).astype(np.float64)
    if len(alt) < window:
        return None
    counts = np.convolve(alt, np.ones(window), mode="valid")  # counts[i] = alt[i:i+window].sum()
    hits = np.flatnonzero(counts >= fraction * window - 1e-9)
    hits = hits[hits + 1 >= start]
    # alt[i] compares values[i+1]-values[i] with values[i+2]-values[i+1]: the cycle starts at i+1
    return int(hits[0]) + 1 if len(hits) else None


def first_crossing(values: ArrayLike, threshold: float, *, start: int = 0) -> int | None:
    """The first index i >= start with values[i] > threshold (None if never); NaNs never cross."""
    values = np.asarray(values, dtype=np.float64)
    above = np.flatnonzero(np.nan_to_num(values[start:], nan=-np.inf) > threshold)
    return int(above[0]) + start if len(above) else None


def count_branches(values: ArrayLike, *, gap: float) -> int:
    """How many clusters the values form when sorted and split wherever two neighbours differ by
    more than ``gap``: 1 for a fixed point, 2 for a 2-cycle, 4 for a 4-cycle, many for a band."""
    values = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if values.size == 0:
        return 0
    return int(np.count_nonzero(np.diff(values) > gap)) + 1


REGIMES = ("smooth", "period 2", "period 4", "band")


def oscillation_regimes(differences: ArrayLike, *, window: int = 100, regular: float = 0.2,
                        tol: float = 1e-12) -> list[str]:
    """The regime of each consecutive ``window`` of a series of differences d_t = F(t) - F(t-1).

    With s the median |d| of the window and r_p = median |d_t - d_{t-p}| / s:

    * "smooth": |d| <= tol, or d changes sign in fewer than half the steps and r_1 < regular
      (a smoothly descending loss);
    * "period 2": r_2 < regular (two branches: d alternates between two slowly drifting values);
    * "period 4": r_4 < regular but not period 2 (also the 8-, 16-, ... cycles that stay close
      to a 4-cycle near the end of the cascade);
    * "band": none of these (chaos, or a long cycle far from period 4).

    A slowly drifting p-cycle still counts as period p as long as the drift per p steps is
    small against the size of d; a trailing partial window is dropped.
    """
    d = np.asarray(differences, dtype=np.float64)
    regimes = []
    for start in range(0, len(d) - window + 1, window):
        w = d[start: start + window]
        scale = float(np.median(np.abs(w)))
        if scale <= tol:
            regimes.append("smooth")
            continue
        roughness = {p: float(np.median(np.abs(w[p:] - w[:-p]))) / scale for p in (1, 2, 4)}
        if alternating(w, tol=tol).mean() < 0.5 and roughness[1] < regular:
            regimes.append("smooth")
        elif roughness[2] < regular:
            regimes.append("period 2")
        elif roughness[4] < regular:
            regimes.append("period 4")
        else:
            regimes.append("band")
    return regimes
