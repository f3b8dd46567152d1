"""Verdict rules of the unhinged-loss paper (Zhou et al., JMLR 24(376), 2023; arXiv 2312.07841).

One function per claim, named after it (``U-T2`` -> :func:`u_t2`); where a claim is measured
in more than one way the suffix says how (``u_i4_digits``, ``u_i4_cifar``). Each takes the
measurements a notebook made (plain numbers, lists, counts) and returns a
:class:`~companion.verdicts.Verdict`; its docstring states the rule in words and names the
notebook that measures it.

Two kinds of rule live here:

* **exact mathematics** (``notebooks/unhinged/01``-``07``): closed forms against gradient
  descent in float64. The residuals are round-off (1e-12 and below) and the thresholds sit
  orders of magnitude above them, so a last-bit change of the CPU cannot move a part across its
  threshold: these rules keep margin 0 and say so.
* **training runs** (``08``-``10``): accuracies, feature norms and losses of networks, which
  move from seed to seed. Their dead zones are sized from the measured spread (a standard error
  over seeds, or the binomial standard error of a test accuracy where there is one seed), passed
  in as a measurement; inside it a part is ``undecided`` with the numbers in the note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from . import (
    largest,
    NOT_CHECKED,
    NOT_REPRODUCED,
    PARTIALLY,
    REPRODUCED,
    UNDECIDED,
    Verdict,
    all_of,
    at_least,
    at_most,
    decide,
    fmt,
    is_missing,
    non_inferior,
    unless_at_scale,
)

# -- small helpers -----------------------------------------------------------------------------

#: the smallest dead zone of a comparison of measured differences with 0: an exact tie (two
#: runs that agree, or two rates both at 100%) is undecided, never a gain
TIE = 1e-12


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if not is_missing(v)]



def _near_one(ratios: Sequence[float | None], tolerance: float, what: str) -> Verdict:
    """Every ratio within ``tolerance`` of 1 (none measured: not checked)."""
    ratios = list(ratios)
    if not ratios:
        return Verdict(NOT_CHECKED, f"{what} within {fmt(tolerance)} of 1", f"{what}: none measured.")
    worst = largest([abs(float(r) - 1) if not is_missing(r) else math.nan for r in ratios])
    listed = ", ".join(fmt(r) for r in ratios)
    return at_most(worst, tolerance, what=f"max |{what} - 1|",
                   expected=f"{what} within {fmt(tolerance)} of 1").noted(f"({what}: {listed}.)")


def accuracy_se(accuracy: float, n: int) -> float:
    """The binomial standard error of a rate (an accuracy, an FPR) measured on ``n`` points.

    The rate is shrunk by half a point towards 1/2, ``(k + 1/2) / (n + 1)`` with ``k`` the count,
    so that a rate of exactly 0 or 1 still has an uncertainty of about 1/n (a plain
    ``sqrt(p (1 - p) / n)`` would be 0 there and let a tie of two such rates look decided)."""
    if n <= 0 or is_missing(accuracy):
        return math.nan
    p = (accuracy * n + 0.5) / (n + 1)
    return math.sqrt(p * (1 - p) / n)


def paired_se(differences: Sequence[float | None]) -> float:
    """Standard error of the mean of paired differences (one per seed); NaN below 2 seeds."""
    data = _finite(differences)
    if len(data) < 2:
        return math.nan
    mean = sum(data) / len(data)
    sd = math.sqrt(sum((d - mean) ** 2 for d in data) / (len(data) - 1))
    return sd / math.sqrt(len(data))


def _mean(values: Sequence[float | None]) -> float:
    """Mean over seeds; NaN if any seed is missing (a diverged run spoils the mean)."""
    values = list(values)
    if not values or any(is_missing(v) for v in values):
        return math.nan
    return sum(float(v) for v in values) / len(values)


# -- notebook 01: Theorem 2 --------------------------------------------------------------------


def u_t2(*, decomposition_residual: float, closed_vs_expm: float, gd_vs_discrete: float,
         flow_over_first_order: float, bias_vs_eq7: float) -> Verdict:
    """U-T2 (notebook ``unhinged/01_closed_form_dynamics``): Theorem 2's closed form.

    Five parts, each the worst case over the schedules and ratios run: the five subspaces add
    up to the identity, are orthogonal eigenspaces (largest residual <= 1e-10); the closed form
    equals a dense matrix exponential (relative error <= 1e-10); gradient descent equals the
    exact discrete solution (<= 1e-9); gradient descent differs from the flow by at most twice
    the predicted first-order term (ratio <= 2); the bias follows eq. 7 (<= 1e-12). Float64
    identities whose residuals are 1e-13 and below, orders of magnitude under the thresholds:
    margin 0.
    """
    return all_of({
        "subspace decomposition": at_most(decomposition_residual, 1e-10, what="largest residual"),
        "closed form = expm": at_most(closed_vs_expm, 1e-10, what="relative error"),
        "GD = exact discrete solution": at_most(gd_vs_discrete, 1e-9, what="relative error"),
        "GD vs flow within 2x the first-order term": at_most(flow_over_first_order, 2.0, what="ratio"),
        "bias = eq. 7": at_most(bias_vs_eq7, 1e-12, what="relative error"),
    }, expected="closed form = expm = GD to round-off; GD - flow = the first-order term; bias as eq. 7")


# -- notebook 02: Corollary 3 ------------------------------------------------------------------


def u_c3(*, exponent_ratios: Sequence[float], gd_vs_discrete: float, train_acc_below: Sequence[float],
         dir_error_beyond: Sequence[float], paper_size_sqrt2_gap: float | None) -> Verdict:
    """U-C3 (notebook ``unhinged/02_gamma_sweep``): Corollary 3's direction convergence.

    Parts: the direction-error slope fitted on gradient descent over Corollary 3's exponent is
    within 0.1 of 1 for every gamma below 2/(C-2); gradient descent equals the exact discrete
    solution (relative error <= 1e-9); training accuracy is 1 below the bound; beyond it the
    gradient-descent direction error ends above 1 (on its way to sqrt 2); at the paper's size
    (closed form) the error beyond the bound is sqrt 2 within 1e-6 (None: no drawn gamma lies beyond
    it). A part with no gamma on its side of the bound is not checked. Deterministic float64 runs
    (fitted ratios 0.99, exact errors 1e-13): margin 0.
    """
    below = list(train_acc_below)
    beyond = list(dir_error_beyond)
    return all_of({
        "fitted / predicted exponent below the bound": _near_one(exponent_ratios, 0.1, "ratio"),
        "GD = exact discrete solution": at_most(gd_vs_discrete, 1e-9, what="relative error"),
        "training accuracy 1 below the bound": (at_least(min(below), 1.0, what="lowest accuracy")
                                                if below else None),
        "GD direction error > 1 beyond the bound": (at_least(min(beyond), 1.0, what="lowest final error")
                                                    if beyond else None),
        "paper size: error -> sqrt 2 beyond the bound": (None if paper_size_sqrt2_gap is None else
                                                         at_most(paper_size_sqrt2_gap, 1e-6, what="|error - sqrt 2|")),
    }, expected="below 2/(C-2) the fitted exponent matches Corollary 3; beyond it the error goes to sqrt 2")


def u_i6(*, argmax_gamma: float, positive_upper: float, fastest_gd_gamma: float, num_classes: int,
         grid_step: float) -> Verdict:
    """U-I6 (notebook ``unhinged/02_gamma_sweep``): which gamma converges fastest.

    Parts: on a fine grid the predicted rate -e(gamma) peaks at 1/(C-1) and is positive up to
    2/(C-2), each within ``grid_step`` (the grid's resolution); among the gammas run by gradient
    descent the fastest fitted one is 1/(C-1). A closed form on a grid: margin = the grid step.
    """
    best, bound = 1 / (num_classes - 1), 2 / (num_classes - 2)
    return all_of({
        "predicted rate peaks at 1/(C-1)": at_most(abs(argmax_gamma - best), grid_step,
                                                   what="|argmax - 1/(C-1)|"),
        "rate > 0 exactly up to 2/(C-2)": at_most(abs(positive_upper - bound), grid_step,
                                                  what="|last positive gamma - 2/(C-2)|"),
        "fastest gradient-descent run at 1/(C-1)": decide(
            None if is_missing(fastest_gd_gamma) else abs(fastest_gd_gamma - best) < 1e-9, "",
            f"fastest tested gamma {fmt(fastest_gd_gamma)}, 1/(C-1) = {fmt(best)}."),
    }, expected=f"1/(C-1) fastest; rate positive on (0, 2/(C-2)) (C = {num_classes})")


# -- notebook 03: Theorem 4, Corollary 5 and the threshold --------------------------------------


def u_t4(*, closed_vs_expm: float, gd_vs_discrete: float, bias_vs_eq14: float, gd_vs_flow: float) -> Verdict:
    """U-T4 (notebook ``unhinged/03_weight_decay``): Theorem 4's closed form with weight decay.

    Parts (worst case over the schedules, ratios and decays run): closed form = dense expm
    (<= 1e-10), gradient descent = exact discrete solution (<= 1e-9), bias = eq. 14 (<= 1e-12),
    gradient descent within 2e-2 of the flow (an O(step) difference; measured 3e-3 and below).
    Float64 identities far below their thresholds: margin 0.
    """
    return all_of({
        "closed form = expm": at_most(closed_vs_expm, 1e-10, what="relative error"),
        "GD = exact discrete solution": at_most(gd_vs_discrete, 1e-9, what="relative error"),
        "bias = eq. 14": at_most(bias_vs_eq14, 1e-12, what="relative error"),
        "GD vs flow O(step)": at_most(gd_vs_flow, 2e-2, what="relative difference"),
    }, expected="closed form = expm = GD to round-off, bias as eq. 14; GD - flow of order the step")


def _regimes_match(measured: Sequence[str], predicted: Sequence[str], what: str) -> Verdict:
    measured, predicted = list(measured), list(predicted)
    if not measured or len(measured) != len(predicted):
        return Verdict(NOT_CHECKED, f"{what} as predicted", f"{what}: nothing to compare.")
    misses = [f"{m} (predicted {p})" for m, p in zip(measured, predicted) if m != p]
    note = f"{what}: {', '.join(measured)}" + (f"; mismatches: {', '.join(misses)}" if misses else "") + "."
    return decide(not misses, f"{what} as predicted", note)


def regime_of_lambda(lam: float, lambda_star: float, tolerance: float = 1e-9) -> str:
    """Corollary 5's regime: explode below lambda*, bounded at it, vanish above."""
    if abs(lam - lambda_star) <= tolerance * max(lambda_star, 1e-300):
        return "bounded"
    return "explode" if lam < lambda_star else "vanish"


def u_c5(*, limit_error: float, regimes: Sequence[str], predicted_regimes: Sequence[str],
         direction_rate_ratio: float) -> Verdict:
    """U-C5 (notebook ``unhinged/03_weight_decay``): Corollary 5.

    Parts: gradient descent at lambda* reaches the corollary's limit (worst relative error over
    the ratios s run <= 1e-8); the regime read off each run's norm growth (explode / bounded /
    vanish) is the one the sign of the top eigenvalue predicts; below lambda* the fitted
    direction rate over Corollary 5's omega is within 0.05 of 1. Float64 runs; slopes of the
    bounded runs are 1e-18 against a regime threshold of 1e-6: margin 0.
    """
    return all_of({
        "limit at lambda*": at_most(limit_error, 1e-8, what="relative error"),
        "regimes": _regimes_match(regimes, predicted_regimes, "regimes"),
        "direction rate below lambda*": _near_one([direction_rate_ratio], 0.05, "fitted / omega"),
    }, expected="the printed limit at lambda*; explode / bounded / vanish as predicted; rate omega")


def u_i5(*, paper_regimes: Mapping[float, str], lambda_star: float, gd_regimes: Sequence[str],
         gd_predicted: Sequence[str]) -> Verdict:
    """U-I5 (notebook ``unhinged/03_weight_decay``): the threshold lambda* at the paper's size.

    ``paper_regimes`` maps each lambda of Figures 4 and 7 to the regime read off the exact
    discrete solution at the paper's size; each must be "explode" below lambda*, "bounded" at
    it and "vanish" above (:func:`regime_of_lambda`). The gradient-descent runs at the notebook's
    size must show their predicted regimes too. Closed form and float64 runs, slopes far from
    the regime thresholds: margin 0.
    """
    lams = sorted(paper_regimes)
    expected_regimes = [regime_of_lambda(lam, lambda_star) for lam in lams]
    return all_of({
        "paper size (closed form)": _regimes_match([paper_regimes[lam] for lam in lams], expected_regimes,
                                                   "regimes by lambda"),
        "gradient descent": _regimes_match(gd_regimes, gd_predicted, "regimes"),
    }, expected="explode below lambda*, bounded at lambda*, vanish above")


def _strictly_decreasing(values: Sequence[float | None], what: str) -> Verdict:
    values = list(values)
    if len(values) < 2:
        return Verdict(NOT_CHECKED, f"{what} strictly decreasing", f"{what}: fewer than two values.")
    listed = ", ".join(fmt(v) for v in values)
    if any(is_missing(v) for v in values):
        return Verdict(NOT_REPRODUCED, f"{what} strictly decreasing", f"{what}: {listed} (a run never got there).")
    ok = all(b < a for a, b in zip(values, values[1:]))
    return decide(ok, f"{what} strictly decreasing", f"{what}: {listed}.")


def u_i7(*, iterations_by_eta: Sequence[float], iterations_by_s: Sequence[float]) -> Verdict:
    """U-I7 (notebook ``unhinged/03_weight_decay``): larger eta and larger s converge faster.

    The iterations to a relative distance of 1e-8 from the limit at lambda* (exact discrete
    solution at the paper's size) must fall strictly along Figure 6's eta grid and along
    Figure 8's s grid (s <= 1), each list in increasing order of eta or s; a run that never gets
    there fails. Integer counts of a closed form, neighbours apart by 20% or more: margin 0.
    """
    return all_of({
        "larger eta faster (Fig. 6)": _strictly_decreasing(iterations_by_eta, "iterations along eta"),
        "larger s faster (Fig. 8)": _strictly_decreasing(iterations_by_s, "iterations along s"),
    }, expected="fewer iterations for every larger eta and every larger s <= 1")


def u_p1(*, nc1: float, min_cos_hw: float, etf_distance: float, init_gap: float) -> Verdict:
    """U-P1 (notebook ``unhinged/03_weight_decay``): the limit collapses but is not an ETF.

    Over the limits measured (two gradient-descent initializations and the paper-size closed
    form): the largest NC1 <= 1e-10 and the smallest cos(h, w_y) >= 1 - 1e-10 (within-class
    collapse and self-duality); the smallest distance of the prototype cosines from -1/(C-1)
    (max over pairs) > 0.1 (not a simplex ETF); the prototype cosines of two initializations
    differ by > 0.1 (initialization-dependent). Float64 limits (NC1 1e-30) and random
    geometries (distances 0.15 and above): margin 0.
    """
    return all_of({
        "within-class collapse (NC1)": at_most(nc1, 1e-10, what="largest NC1"),
        "self-duality cos(h, w_y) = 1": at_least(min_cos_hw, 1 - 1e-10, what="smallest cosine"),
        "not a simplex ETF": at_least(etf_distance, 0.1, what="smallest max |cos + 1/(C-1)|"),
        "depends on the initialization": at_least(init_gap, 0.1, what="largest cosine gap between inits"),
    }, expected="collapse + self-duality at a point that depends on the initialization, not an ETF")


# -- notebook 04: Theorem 6 --------------------------------------------------------------------


def u_t6(*, gd_vs_discrete: float, slope_ratios: Sequence[float], limit_error: float,
         iterations_to_floor: Sequence[float], errors_at_5k: Sequence[float]) -> Verdict:
    """U-T6 (notebook ``unhinged/04_prototype_anchored``): Theorem 6.

    Parts: gradient descent with W frozen equals the exact discrete solution (<= 1e-10); the
    fitted slope of log(error) over -lambda eta is within 0.05 of 1 wherever the run covers at
    least 5 e-folds; with a zero-mean W every feature ends at (1+gamma)/(lambda C N) w_c
    (relative error <= 1e-6); at the paper's size (exact discrete solution) the error reaches
    1e-13 within the run for lambda >= 0.01 (``iterations_to_floor``, NaN = never) and the error
    after 5,000 iterations falls strictly with lambda (``errors_at_5k`` in increasing order of
    lambda). Float64 and closed forms far from every threshold: margin 0.
    """
    floor = list(iterations_to_floor)
    return all_of({
        "GD = exact discrete solution": at_most(gd_vs_discrete, 1e-10, what="relative error"),
        "rate e^(-lambda eta t)": _near_one(slope_ratios, 0.05, "slope / (-lambda eta)"),
        "limit (1+gamma)/(lambda C N) w_c": at_most(limit_error, 1e-6, what="relative error"),
        "paper size: error reaches 1e-13 (lambda >= 0.01)": decide(
            (not any(is_missing(v) for v in floor)) if floor else None, "",
            "iterations to 1e-13: " + ", ".join(fmt(v) for v in floor) + "."),
        "paper size: larger lambda faster": _strictly_decreasing(errors_at_5k, "error after 5k iterations"),
    }, expected="GD = Theorem 6 to round-off; error O(e^(-lambda eta t)), larger lambda faster")


# -- notebook 05: Theorem 7, RLR ----------------------------------------------------------------


def u_t7(*, recursion_vs_gd_error: float, recursion_vs_gd_norm: float, cosine_form_vs_gd: float,
         ufm_vs_independent_gd: float, norms_non_decreasing: bool, errors_decrease: bool) -> Verdict:
    """U-T7 (notebook ``unhinged/05_spherical_rescaled_lr``): Theorem 7 / Lemma 10.

    Parts: the angle recursion reproduces gradient descent's direction errors (relative
    <= 1e-8, where the error is above 1e-6) and norms (<= 1e-10); the printed cosine recursion
    (eq. 84) reproduces its cosines (<= 1e-10); the companion's UFM trainer equals an
    independent NumPy gradient descent (<= 1e-10); feature norms never decrease; every
    direction error falls (non-increasing, and to below 1% of its start). Float64 residuals of
    1e-10 and below: margin 0.
    """
    return all_of({
        "recursion = GD (direction error)": at_most(recursion_vs_gd_error, 1e-8, what="relative error"),
        "recursion = GD (norms)": at_most(recursion_vs_gd_norm, 1e-10, what="relative error"),
        "printed cosine recursion = GD": at_most(cosine_form_vs_gd, 1e-10, what="largest cosine gap"),
        "UFM trainer = independent GD": at_most(ufm_vs_independent_gd, 1e-10, what="relative error"),
        "norms non-decreasing": bool(norms_non_decreasing),
        "directions converge": bool(errors_decrease),
    }, expected="GD = the recursion; norms never decrease; every direction turns to its prototype")


def u_p2(*, runs_meeting_condition: int, converged: int, norms_monotone: int) -> Verdict:
    """U-P2 (notebook ``unhinged/05_spherical_rescaled_lr``): RLR keeps the guarantee.

    Among the RLR runs whose step meets the condition eta(1+gamma)/(CN) <= 1/||w||: every one
    must converge (direction error non-increasing and below 1e-8 at the end: ``converged``
    counts those) with non-decreasing norms (``norms_monotone``). No run meets the condition:
    not checked (it is sufficient, not necessary). Counts: no margin.
    """
    expected = "every RLR run meeting the step condition converges with non-decreasing norms"
    if runs_meeting_condition <= 0:
        return Verdict(NOT_CHECKED, expected, "no RLR run meets the step condition.")
    note = (f"{converged} of {runs_meeting_condition} runs converged, {norms_monotone} of "
            f"{runs_meeting_condition} with non-decreasing norms.")
    return decide(converged == runs_meeting_condition and norms_monotone == runs_meeting_condition, expected, note)


def _faster(plain: float | None, rlr: float | None) -> bool:
    """RLR reached the target in fewer steps (or at all, where plain never did)."""
    if is_missing(rlr):
        return False
    return is_missing(plain) or rlr < plain


def u_i4(*, steps_plain: Sequence[float], steps_rlr: Sequence[float], paper_final_plain: Sequence[float],
         paper_final_rlr: Sequence[float]) -> Verdict:
    """U-I4 (notebook ``unhinged/05_spherical_rescaled_lr``): RLR converges in fewer steps (UFM).

    Parts: for every eta, RLR reaches a direction error of 1e-8 in fewer steps than the plain
    rate (NaN: never reached; RLR reaching it where plain does not counts as faster); at the
    paper's size (Fig. 9) RLR's final error is no larger than plain's for every eta. Step counts
    of a deterministic recursion, apart by a factor of 6: margin 0.
    """
    pairs = list(zip(steps_plain, steps_rlr))
    paper = list(zip(paper_final_plain, paper_final_rlr))
    slower = [f"{fmt(a)} vs {fmt(b)}" for a, b in pairs if not _faster(a, b)]
    worse = [f"{fmt(a)} vs {fmt(b)}" for a, b in paper if is_missing(b) or (not is_missing(a) and b > a)]
    return all_of({
        "fewer steps to 1e-8 (every eta)": decide(not slower if pairs else None, "",
                                                  "steps plain vs RLR: " + ", ".join(f"{fmt(a)} vs {fmt(b)}" for a, b in pairs)
                                                  + "."),
        "paper size: RLR error <= plain (every eta)": decide(not worse if paper else None, "",
                                                             ("worse: " + ", ".join(worse) + ".") if worse else ""),
    }, expected="RLR reaches a given direction error in fewer steps, at every eta")


# -- notebook 06: Lemma 1 ---------------------------------------------------------------------


def u_l1(*, value_gap_inside: float, minimizer_gaps: Sequence[float], minimizer_etf_distances: Sequence[float],
         beyond_gap: float | None, c3_is_etf: bool | None) -> Verdict:
    """U-L1 (notebook ``unhinged/06_lemma1_norm_bounded``): Lemma 1 as stated.

    The lemma's necessary part is that the minimizer is unique and a simplex ETF. Candidate
    minimizers are given by their objective gap to -(1+gamma)E1E2 (``minimizer_gaps``) and their
    distance from a simplex ETF (``minimizer_etf_distances``, max |cos + 1/(C-1)| over pairs): one
    exact minimizer (gap <= 1e-12) at distance > 0.1 refutes the lemma, so "not reproduced"
    whatever else holds. Its value part: projected gradient descent reaches -(1+gamma)E1E2 within
    1e-6 where gamma(C-2) <= 2 (``value_gap_inside``); where gamma(C-2) > 2 (``beyond_gap`` = how
    far the lowest loss found lies below the stated minimum; None: not run) a loss more than
    1e-3 below it refutes the value too. ``c3_is_etf``: the minima found at C = 3 are an ETF
    (None: C = 3 not run). The note lists every part. Exact constructions (gaps 0 against 1e-12,
    distances 0.75 against 0.1) and converged float64 minima (gaps 1e-7 against 1e-6, 0.7
    against 1e-3): margin 0.
    """
    expected = "a unique minimizer, a simplex ETF, with value -(1+gamma)E1E2 (as stated)"
    pairs = list(zip(minimizer_gaps, minimizer_etf_distances))
    counter = sum(1 for gap, dist in pairs
                  if not is_missing(gap) and not is_missing(dist) and abs(gap) <= 1e-12 and dist > 0.1)
    unique = (decide(counter == 0, "", f"{counter} of {len(pairs)} exact minimizers built are not a simplex ETF.")
              if pairs else Verdict(NOT_CHECKED, "", "no candidate minimizer built."))
    value = at_most(value_gap_inside, 1e-6, what="|PGD loss - (-(1+gamma)E1E2)|")
    beyond = (Verdict(NOT_CHECKED, "", "no run with gamma(C-2) > 2.") if beyond_gap is None
              else at_most(beyond_gap, 1e-3, what="stated minimum - lowest loss"))
    parts = {"unique ETF minimizer": unique, "value where gamma(C-2) <= 2": value,
             "value where gamma(C-2) > 2": beyond, "ETF at C = 3": c3_is_etf}
    combined = all_of(parts, expected)
    if unique.verdict == NOT_REPRODUCED or beyond.verdict == NOT_REPRODUCED:
        return Verdict(NOT_REPRODUCED, expected, "A necessary part fails. " + combined.note)
    return combined


# -- notebook 07: Theorem 8 --------------------------------------------------------------------


def u_t8(*, ntk_change: float, ntk_formula: float, gd_vs_discrete: float, superposition_unhinged: float,
         superposition_mse: float) -> Verdict:
    """U-T8 (notebook ``unhinged/07_ntk_invariant``): a constant NTK makes the dynamics linear.

    Parts: the NTK does not change during training and equals (Phi^T Phi + 11^T) kron I_p
    (relative <= 1e-12); gradient descent equals (I + eta A)^k Z0 (<= 1e-10); the superposition
    residual of four runs is round-off for the unhinged loss (<= 1e-10) and not for MSE
    (>= 1e-3; measured 0.6). Float64 residuals of 1e-14 and below: margin 0.
    """
    return all_of({
        "NTK constant": at_most(ntk_change, 1e-12, what="relative change"),
        "NTK = (Phi^T Phi + 11^T) kron I": at_most(ntk_formula, 1e-12, what="relative error"),
        "GD = (I + eta A)^k Z0": at_most(gd_vs_discrete, 1e-10, what="relative error"),
        "unhinged: linear (superposition)": at_most(superposition_unhinged, 1e-10, what="residual"),
        "MSE: not linear": at_least(superposition_mse, 1e-3, what="residual"),
    }, expected="linear for the unhinged loss, not for MSE")


# -- notebooks 08 and 09: the insights on networks ---------------------------------------------


def _seed_mean_and_se(differences: Sequence[float | None]) -> tuple[float, float]:
    """Mean of per-seed differences and its standard error (NaN if any seed is missing)."""
    return _mean(differences), paired_se(differences)


def u_i1(*, diverged_runs: int, runs: int, control_diverged: int = 0, first_nan_epoch: int | None = None) -> Verdict:
    """U-I1 (notebooks ``unhinged/08_insights_small_data`` on digits, ``09_cifar_classification``
    at gpu/paper): the plain unhinged loss with a learned classifier is unstable.

    Reproduced if every run with a learned classifier reaches NaN while no cross-entropy control
    run does; not reproduced if none does; partially if some do. No run: not checked. Counts of
    divergence (at ci the runs reach NaN by epoch 3 of 15): no margin.
    """
    expected = "every learned-classifier run reaches NaN; cross-entropy does not"
    if runs <= 0:
        return Verdict(NOT_CHECKED, expected, "no run.")
    note = (f"{diverged_runs} of {runs} runs diverged (first NaN at epoch {fmt(first_nan_epoch)}); "
            f"cross-entropy runs diverged: {control_diverged}.")
    if diverged_runs == runs and control_diverged == 0:
        return Verdict(REPRODUCED, expected, note)
    if diverged_runs == 0:
        return Verdict(NOT_REPRODUCED, expected, note)
    return Verdict(PARTIALLY, expected, note)


def _non_inferior_parts(gaps: Mapping[str, Sequence[float]], margin: float,
                        standard_errors: Mapping[str, float] | None, unit: str) -> dict[str, Verdict]:
    parts = {}
    for name, values in gaps.items():
        values = list(values)
        mean = _mean(values)
        se = (standard_errors or {}).get(name, paired_se(values))
        if is_missing(mean):
            parts[name] = Verdict(NOT_REPRODUCED, "", f"{name}: a run diverged (nan).")
        elif is_missing(se):
            parts[name] = Verdict(NOT_CHECKED, "", f"gap {fmt(mean)} from one seed without a standard error.")
        else:
            parts[name] = non_inferior(mean, se, margin, what=f"{unit} gap")
    return parts


def u_i2(*, gaps: Mapping[str, Sequence[float]], margin: float, standard_errors: Mapping[str, float] | None = None,
         unit: str = "accuracy") -> Verdict:
    """U-I2 (notebooks ``unhinged/08_insights_small_data`` on digits, ``09_cifar_classification``
    at gpu/paper): with PAL the unhinged loss trains as well as cross-entropy.

    ``gaps`` maps each PAL variant to its per-seed accuracy minus its cross-entropy reference's
    (same seed; NaN for a diverged run). Each variant is a non-inferiority test with margin
    ``margin``: reproduced if mean - 2 SE > -margin, not reproduced if mean + 2 SE < -margin,
    undecided in between; the SE is the seed-to-seed standard error of the paired differences,
    or ``standard_errors[variant]`` where given (one seed: the binomial SE of the difference of
    two test accuracies). A diverged run fails its variant. Parts combine by
    :func:`~companion.verdicts.all_of`.
    """
    points = " points" if "points" in unit else ""
    return all_of(_non_inferior_parts(gaps, margin, standard_errors, unit),
                  expected=f"every PAL variant within {fmt(margin)}{points} of its cross-entropy reference or better "
                           "(2-SE non-inferiority; a diverged run fails)")


def _blow_up(log_ratios: Sequence[float | None], threshold: float) -> Verdict:
    values = list(log_ratios)
    if not values:
        return Verdict(NOT_CHECKED, "", "no run.")
    if any(is_missing(v) or math.isinf(v) for v in values):
        return Verdict(REPRODUCED, "", "a plain-PAL run diverged (nan or inf): blown up.")
    mean, se = _seed_mean_and_se(values)
    return at_least(mean, threshold, 0.0 if is_missing(se) else 2 * se, what="mean log10 norm ratio")


def u_i3(*, log10_norm_ratio: Sequence[float], efr_norm: Sequence[float], acc_efr: Sequence[float],
         acc_plain: Sequence[float]) -> Verdict:
    """U-I3 (notebook ``unhinged/08_insights_small_data``): EFR bounds the feature norms and keeps accuracy.

    Per seed: ``log10_norm_ratio`` = log10(mean ||h|| of plain PAL / of PAL + EFR) (NaN or inf: plain
    PAL diverged), ``efr_norm`` = mean ||h|| with EFR, and the test accuracies of both. Parts, each
    with a dead zone of 2 seed-to-seed standard errors: plain PAL blows up (mean log ratio > 3, or
    a run diverged); EFR's norm stays below 100; EFR's accuracy exceeds plain PAL's by more than
    0.2 (paired by seed; a diverged plain-PAL run counts as below any finite accuracy).
    """
    efr_mean, efr_se = _seed_mean_and_se(efr_norm)
    acc_plain, acc_efr = list(acc_plain), list(acc_efr)
    if acc_plain and any(is_missing(a) for a in acc_plain) and not any(is_missing(a) for a in acc_efr):
        accurate = Verdict(REPRODUCED, "", "plain PAL diverged (nan accuracy); PAL + EFR finite.")
    else:
        diffs = [e - p for e, p in zip(acc_efr, acc_plain)]
        mean, se = _seed_mean_and_se(diffs)
        accurate = (at_least(mean, 0.2, 0.0 if is_missing(se) else 2 * se, what="mean accuracy gain of EFR")
                    if diffs else Verdict(NOT_CHECKED, "", "no run."))
    return all_of({
        "plain PAL blows up": _blow_up(log10_norm_ratio, 3.0),
        "EFR keeps ||h|| bounded": (at_most(efr_mean, 100.0, 0.0 if is_missing(efr_se) else 2 * efr_se,
                                            what="mean ||h|| with EFR") if list(efr_norm)
                                    else Verdict(NOT_CHECKED, "", "no run.")),
        "EFR keeps accuracy, far above plain PAL": accurate,
    }, expected="EFR keeps ||h|| bounded and accuracy high; plain PAL blows up (dead zones: 2 seed SE)")


def _gain(differences: Sequence[float | None], what: str) -> Verdict:
    values = list(differences)
    if not values:
        return Verdict(NOT_CHECKED, "", f"{what}: no run.")
    mean, se = _seed_mean_and_se(values)
    if is_missing(se) and not is_missing(mean):
        return Verdict(NOT_CHECKED, "", f"{what} = {fmt(mean)} from one seed: no spread to size a dead zone.")
    return at_least(mean, 0.0, max(2 * se, TIE) if not is_missing(se) else TIE, what=what)


def u_i4_digits(*, settings: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> Verdict:
    """U-I4 (notebook ``unhinged/08_insights_small_data``): RLR speeds up FNPAL on digits.

    ``settings`` maps a model (e.g. "no BN", "BN") to two lists over seeds: the epoch-1 training
    loss of FNPAL minus that of FNPAL + RLR (positive: RLR lower) and the epoch-5 test accuracy
    of FNPAL + RLR minus that of FNPAL (positive: RLR higher). Each must be positive beyond a
    dead zone of 2 seed-to-seed standard errors (inside it: undecided); a missing value (a
    diverged run) fails. Parts combine by :func:`~companion.verdicts.all_of`.
    """
    parts = {}
    for name, (loss_gain, acc_gain) in settings.items():
        parts[f"{name}: lower epoch-1 loss"] = _gain(loss_gain, "mean loss drop with RLR")
        parts[f"{name}: higher epoch-5 accuracy"] = _gain(acc_gain, "mean accuracy gain with RLR")
    return all_of(parts, expected="RLR: lower early loss and higher early accuracy (dead zones: 2 seed SE)")


def u_e1(*, gaps: Mapping[str, Sequence[float]], standard_errors: Mapping[str, float] | None, losses_finite: bool,
         prototypes_frozen: bool, at_scale: bool, why: str = "") -> Verdict:
    """U-E1 (notebook ``unhinged/09_cifar_classification``): Figure 2's variants against CE.

    ``gaps`` maps each unhinged-loss variant (UL (PAL), UL* (PAL), UL (FNPAL), UL (FNPAL) + RLR)
    to its final validation accuracy minus cross-entropy's, in points, per seed. Each must be
    non-inferior with a margin of 1 point (2-SE test; SE over seeds, or the binomial SE of the
    difference of two test accuracies where ``standard_errors`` gives it, for one seed); every
    training loss finite; every PAL / FNPAL head still its frozen scaled simplex ETF. Away from
    the paper's scale (``at_scale`` False: the ci code-path check) not checked, with what the
    stand-in measured in the note.
    """
    parts: dict[str, Verdict | bool | None] = dict(_non_inferior_parts(gaps, 1.0, standard_errors, "accuracy (points)"))
    parts["losses finite"] = bool(losses_finite)
    parts["PAL/FNPAL prototypes frozen"] = bool(prototypes_frozen)
    verdict = all_of(parts, expected="every UL variant within 1 point of CE or better (2-SE non-inferiority), "
                                     "losses finite, prototypes frozen")
    return unless_at_scale(verdict, at_scale, why)


def u_i4_cifar(*, epochs_plain: Sequence[float], epochs_rlr: Sequence[float], epochs: int) -> Verdict:
    """U-I4 (notebook ``unhinged/09_cifar_classification`` at gpu/paper): RLR speeds up FNPAL.

    Per seed, the epochs FNPAL and FNPAL + RLR need to reach the target validation accuracy (NaN:
    not within ``epochs``, counted as ``epochs + 1``). Reproduced if FNPAL's count minus RLR's is
    positive beyond the dead zone, not reproduced if negative beyond it: 2 seed-to-seed standard
    errors, or one epoch (the resolution of the count) with a single seed. Neither reaches the
    target in any seed: not checked.
    """
    expected = "fewer epochs to the target accuracy with RLR"
    plain, rlr = list(epochs_plain), list(epochs_rlr)
    if not plain or all(is_missing(v) for v in plain + rlr):
        return Verdict(NOT_CHECKED, expected, "neither run reached the target accuracy.")
    censor = lambda v: epochs + 1 if is_missing(v) else float(v)  # noqa: E731
    diffs = [censor(a) - censor(b) for a, b in zip(plain, rlr)]
    mean, se = _seed_mean_and_se(diffs)
    margin = 1.0 if is_missing(se) else 2 * se
    return at_least(mean, 0.0, margin, what="epochs saved by RLR", expected=expected)


# -- notebook 10: long tail, calibration, OOD ------------------------------------------------


def _positive_parts(gains: Mapping[str, Sequence[float]], standard_errors: Mapping[str, float] | None,
                    what: str) -> dict[str, Verdict]:
    parts = {}
    for name, values in gains.items():
        values = list(values)
        mean = _mean(values)
        se = (standard_errors or {}).get(name, paired_se(values))
        if not values:
            parts[name] = Verdict(NOT_CHECKED, "", "no run.")
        elif is_missing(mean):
            parts[name] = Verdict(NOT_REPRODUCED, "", f"{name}: a run diverged (nan).")
        elif is_missing(se):
            parts[name] = Verdict(NOT_CHECKED, "", f"{what} {fmt(mean)} from one seed without a standard error.")
        else:
            parts[name] = at_least(mean, 0.0, max(2 * se, TIE), what=what)
    return parts


def u_e2(*, gains: Mapping[str, Sequence[float]], standard_errors: Mapping[str, float] | None, at_scale: bool,
         why: str = "") -> Verdict:
    """U-E2 (notebook ``unhinged/10_longtail_ood``): Table 2 on long-tailed CIFAR-10.

    ``gains`` holds, for every imbalance ratio rho > 1, four accuracy differences in points per
    seed, like against like: UL - CE, (UL + EFR) - (CE + EFR), (CE + EFR) - CE and (UL + EFR) - UL.
    Each must be positive beyond 2 standard errors (over seeds, or the binomial SE of the
    difference of two test accuracies where ``standard_errors`` gives it); inside: undecided.
    Parts combine by :func:`~companion.verdicts.all_of`. Away from the paper's scale not checked.
    """
    verdict = all_of(_positive_parts(gains, standard_errors, "accuracy gain (points)"),
                     expected="at every rho > 1: UL > CE, UL + EFR > CE + EFR, EFR > plain for both (beyond 2 SE)")
    return unless_at_scale(verdict, at_scale, why)


def u_e3(*, ece_drops: Mapping[str, Sequence[float]], standard_errors: Mapping[str, float] | None, at_scale: bool,
         why: str = "") -> Verdict:
    """U-E3 (notebook ``unhinged/10_longtail_ood``): EFR lowers CE's calibration error.

    ``ece_drops`` maps each tested setting (the exponential long tails at the ratios where the
    paper's Fig. 10 shows EFR lowering ECE for every lambda) to ECE(CE) - ECE(CE + EFR) in points
    per seed. Each must be positive beyond 2 standard errors (over seeds, or a bootstrap SE of the
    difference over the test set where ``standard_errors`` gives it). No tested setting: not
    checked. Away from the paper's scale not checked.
    """
    expected = "EFR lowers CE's ECE where the paper's Fig. 10 shows a drop (beyond 2 SE)"
    if not ece_drops:
        return unless_at_scale(Verdict(NOT_CHECKED, expected, "no setting where the paper's Fig. 10 shows a drop."),
                               at_scale, why)
    verdict = all_of(_positive_parts(ece_drops, standard_errors, "ECE drop (points)"), expected=expected)
    return unless_at_scale(verdict, at_scale, why)


def u_e4(*, fpr_drops: Mapping[str, Sequence[float]], standard_errors: Mapping[str, float] | None, at_scale: bool,
         why: str = "") -> Verdict:
    """U-E4 (notebook ``unhinged/10_longtail_ood``): EFR improves OOD detection.

    ``fpr_drops`` maps each (loss, score) pair, loss in {CE, UL} and score in {max-softmax, energy,
    feature norm}, to FPR95(plain) - FPR95(with EFR) in points per seed. Each must be positive
    beyond 2 standard errors (over seeds, or the binomial SE of the difference of two rates over
    the OOD set where ``standard_errors`` gives it). Away from the paper's scale not checked.
    """
    verdict = all_of(_positive_parts(fpr_drops, standard_errors, "FPR95 drop (points)"),
                     expected="EFR lowers FPR95 for CE and UL with all three scores (beyond 2 SE)")
    return unless_at_scale(verdict, at_scale, why)


# -- the paper's tables, read from the registry (one source per fact) -------------------------


def _numbers(text: str) -> list[float]:
    return [float(x) for x in text.split("/")]


def _rows(block: str) -> dict[str, list[float]]:
    """'name a/b/c, name2 d/e/f' -> {name: [a, b, c], ...}."""
    out = {}
    for item in block.split(", "):
        name, values = item.strip().rsplit(" ", 1)
        out[name] = _numbers(values)
    return out


def paper_tables() -> dict[str, dict]:
    """The paper's long-tail, calibration and OOD numbers, parsed from the registry's paper_value
    of U-E2 (Table 2, CIFAR-10), U-E3 (Table 4 and Fig. 10) and U-E4 (Tables 3 and 6).

    Returns plain dicts: ``table2`` {method: accuracy % at rho = 100, 50, 20, 10, 1};
    ``table4`` {lambda: (long-tail accuracies at rho = 100, 50, 20, 10, step accuracies at the
    same rho)}; ``fig10`` {rho: [(accuracy %, ECE %) for lambda = 0, 5e-6, 1e-5, 5e-5]};
    ``table3`` and ``table6`` {metric: {row: [softmax, energy, feature norm]}} in %.
    """
    from ..pipeline import claims

    e2 = claims.get("U-E2").paper_value.split(": ", 1)[1]
    table2 = {}
    for item in e2.split("; "):
        name, values = item.rsplit(" ", 1)
        table2[name] = _numbers(values)
    table4_text, fig10_text = claims.get("U-E3").paper_value.split(". Fig. 10, ", 1)
    table4 = {}
    for item in table4_text.split(": ", 1)[1].split("; "):
        name, rest = item.split(" ", 1)
        long_tail, step = rest.split(", ")
        table4[name] = (_numbers(long_tail), _numbers(step))
    fig10 = {}
    for item in fig10_text.split(": ", 1)[1].split("; "):
        rho, rest = item.split(" ", 1)
        fig10[int(rho.removeprefix("rho"))] = [tuple(_numbers(pair)) for pair in rest.split(", ")]
    e4 = claims.get("U-E4").paper_value
    table3_text, table6_text = e4.split(" (EFR lambda=", 1)[0], e4.split(". Table 6, ", 1)[1]

    def metric_blocks(text: str) -> dict[str, dict[str, list[float]]]:
        blocks = {}
        for block in text.split(": ", 1)[1].split("; "):
            metric, rest = block.split(" ", 1)
            blocks[metric] = _rows(rest)
        return blocks

    return {"table2": table2, "table4": table4, "fig10": fig10, "table3": metric_blocks(table3_text),
            "table6": metric_blocks(table6_text)}


def fig10_drop_ratios(fig10: Mapping[int, Sequence[tuple[float, float]]]) -> list[int]:
    """The imbalance ratios at which the paper's Fig. 10 shows EFR lowering CE's ECE for every
    lambda (the first entry is lambda = 0, the baseline)."""
    return [rho for rho, entries in fig10.items() if all(ece < entries[0][1] for _, ece in entries[1:])]
