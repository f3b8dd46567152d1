"""Verdict rules of the neural-collapse loss paper (Zhou, You, Li, Liu, Liu, Qu, Zhu, *Are All
Losses Created Equal: A Neural Collapse Perspective*, NeurIPS 2022; arXiv 2210.02192; official
code github.com/jinxinzhou/nc_loss).

One function per claim, named after it (``NC-T1`` -> :func:`nc_t1`). Each takes the
measurements a notebook made (plain numbers, mappings, counts) and returns a
:class:`~companion.verdicts.Verdict`; its docstring states the rule in words and names the
notebook that measures it.

Two kinds of rule live here:

* **exact mathematics** (``notebooks/nc_losses/01``-``04``): closed forms, float64 gradient
  descent on the unconstrained-features model (UFM) and Hessians. The residuals are round-off
  (1e-12 and below) or the stated convergence of a run, and every threshold sits orders of
  magnitude away from the measured value, so a last-bit change of the CPU cannot move a part
  across it: these rules keep margin 0 and say so in their docstrings.
* **training runs** (``05``, ``06``): NC metrics and accuracies of networks, which move from
  seed to seed. Their dead zones are sized from the measured spread over seeds (passed in as a
  measurement); inside one a part is ``undecided`` with the numbers in the note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from . import (
    largest,
    smallest,
    NOT_CHECKED,
    NOT_REPRODUCED,
    Verdict,
    all_of,
    at_least,
    at_most,
    decide,
    fmt,
    is_missing,
    spread_margin,
    unless_at_scale,
)

LOSSES = ("ce", "ls", "focal", "mse")




def _summarized(verdict: Verdict, summary: str) -> Verdict:
    """``verdict`` whose note opens with ``summary`` (one sentence with the decisive numbers, what
    the report shows), followed by every part's verdict."""
    return Verdict(verdict.verdict, verdict.expected, f"{summary} Parts: {verdict.note}" if verdict.note else summary)


def _listing(values: Mapping[str, float | None]) -> str:
    return ", ".join(f"{k} {fmt(v, 2)}" for k, v in values.items())


# -- 01: the metrics ---------------------------------------------------------------------------

#: a metric that "moved" is at least this large; one that "stayed" at most this (float64 round-off
#: is ~1e-16, the broken properties move their metric to 1e-3 and more)
MOVED, STAYED = 1e-6, 1e-10


def nc_d1(exact_max: float, cases: Mapping[str, tuple[float, float]]) -> Verdict:
    """NC-D1 (``nc_losses/01_nc_metrics``): the metrics vanish on an exact NC configuration
    and each one detects its own property.

    Reproduced when the largest of NC1, NC2(W), NC2(H), NC3 and the NCC mismatch on the exact
    configurations is at most 1e-12, and in every broken case (name -> (the smallest metric
    that must move, the largest metric that must stay 0)) the moved metric is at least 1e-6
    and the others at most 1e-10. Exact float64 constructions: round-off is ~1e-16 and the
    moved metrics are 1e-3 or more, far from both thresholds, so margin 0. No case: not
    reproduced (nothing detected)."""
    expected = "all metrics <= 1e-12 at exact NC; in each broken case its metric >= 1e-6, the others <= 1e-10"
    parts: dict[str, Verdict] = {"exact NC": at_most(exact_max, 1e-12, what="largest metric at exact NC")}
    for name, (moved, stayed) in cases.items():
        parts[name] = all_of({"moves": at_least(moved, MOVED, what="its metric"),
                              "others stay": at_most(stayed, STAYED, what="largest other metric")}, "")
    if not cases:
        parts["broken cases"] = decide(False, "", "no broken case measured.")
    moved = smallest([m for m, _ in cases.values()]) if cases else math.nan
    stayed = largest([x for _, x in cases.values()]) if cases else math.nan
    return _summarized(all_of(parts, expected),
                       f"Largest metric at exact NC {fmt(exact_max, 2)}; in the {len(cases)} broken cases the own metric "
                       f"is at least {fmt(moved, 2)} and the others at most {fmt(stayed, 2)}.")


def nc_m1(optimum_gap: float, offset_centred: float, offset_uncentred: float,
          mse_wmu_b: float, mse_closed_form: float, mse_ncc_mismatch: float,
          finite: bool) -> Verdict:
    """NC-M1 (``nc_losses/01_nc_metrics``): the conventions of nc_loss's ``evaluate.py``.

    Four parts: (1) at the UFM optimum the centred and uncentred NC2(W) agree
    (``optimum_gap`` <= 1e-12) and with a common row offset they differ (uncentred >= 0.1,
    centred <= 1e-12); (2) at the MSE optimum the code's "NC4" ||W mu_G + b|| equals the closed
    form sqrt(K) beta* (relative 1e-9) and is >= 0.1 while the NCC mismatch is 0; (3) every
    metric is finite at W = 0 and at H = 0. Exact float64 values (round-off ~1e-16, the
    offset and the MSE bias give O(1) values), so margin 0."""
    expected = ("centred = uncentred at the optimum, not off it; ||W mu_G + b|| = sqrt(K) beta* > 0 "
                "with NCC mismatch 0 at the MSE optimum; finite at W = 0 and H = 0")
    closed_gap = (abs(mse_wmu_b - mse_closed_form) / abs(mse_closed_form)
                  if not (is_missing(mse_wmu_b) or is_missing(mse_closed_form)) and mse_closed_form
                  else math.nan)
    parts = {
        "agree at the optimum": at_most(optimum_gap, 1e-12, what="|centred - uncentred| NC2(W)"),
        "differ with a row offset": all_of({
            "uncentred moves": at_least(offset_uncentred, 0.1, what="uncentred NC2(W)"),
            "centred stays": at_most(offset_centred, 1e-12, what="centred NC2(W)")}, ""),
        "code's NC4 is ||W mu_G + b||": all_of({
            "= sqrt(K) beta*": at_most(closed_gap, 1e-9, what="relative gap"),
            "nonzero": at_least(mse_wmu_b, 0.1, what="||W mu_G + b||"),
            "NCC mismatch 0": at_most(mse_ncc_mismatch, 0.0, what="NCC mismatch")}, ""),
        "finite at W = 0 and H = 0": decide(bool(finite), ""),
    }
    return _summarized(all_of(parts, expected),
                       f"Centred and uncentred NC2(W) {fmt(optimum_gap, 2)} apart at the optimum, {fmt(offset_centred, 2)} "
                       f"and {fmt(offset_uncentred, 2)} with a row offset; at the MSE optimum ||W mu_G + b|| = "
                       f"{fmt(mse_wmu_b)} (sqrt(K) beta* = {fmt(mse_closed_form)}) with NCC mismatch {fmt(mse_ncc_mismatch, 2)}.")


# -- 02: global minimizers of the UFM ----------------------------------------------------------


def nc_t1(final_max: Mapping[str, float], objective_gap: float, threshold: float = 1e-3) -> Verdict:
    """NC-T1 (``nc_losses/02_ufm_global_minimizers``): gradient descent on the UFM from random
    starts reaches neural collapse for CE, LS, FL and MSE, at the closed form's optimal value.

    ``final_max`` maps each loss to its largest final NC1, NC2(W), NC2(H) or NC3 over seeds
    (NaN for a diverged run); ``objective_gap`` is the largest |f/f* - 1| over every loss and
    seed. Reproduced when every loss is at most ``threshold`` (1e-3) and the gap at most
    1e-9; a loss missing from ``final_max`` fails. Float64 GD: at ci the metrics end at 5e-8
    or below and the gap at round-off, orders of magnitude from the thresholds, so margin 0."""
    expected = f"NC1, NC2(W), NC2(H), NC3 <= {fmt(threshold)} for every loss and seed; f = f* (1e-9)"
    parts = {loss: at_most(final_max.get(loss, math.nan), threshold, what=f"{loss}: largest final metric")
             for loss in (*LOSSES, *[k for k in final_max if k not in LOSSES])}
    parts["same optimal value"] = at_most(objective_gap, 1e-9, what="max |f/f* - 1|")
    return _summarized(all_of(parts, expected),
                       f"Largest final NC metric: {_listing(final_max) or 'none measured'}; "
                       f"max |f/f* - 1| {fmt(objective_gap, 2)}.")


def nc_t2(relative_error: float, bias_error: float) -> Verdict:
    """NC-T2 (``nc_losses/02_ufm_global_minimizers``): the closed forms of the optimum (our
    derivation) against gradient descent.

    Reproduced when the largest relative error of the margin, the norms of W and H, their
    ratio and the objective, over losses and seeds, is at most 1e-6, and the largest
    |b - b*| at most 1e-9. Float64 GD (errors 2e-8 and below at ci), margin 0."""
    expected = "GD = closed forms: relative error <= 1e-6, |b - b*| <= 1e-9"
    verdict = all_of({"margin, norms, ratio, objective": at_most(relative_error, 1e-6, what="max relative error"),
                      "bias": at_most(bias_error, 1e-9, what="max |b - b*|")}, expected)
    return _summarized(verdict, f"GD against the closed forms: largest relative error {fmt(relative_error, 2)}, "
                                f"largest |b - b*| {fmt(bias_error, 2)}.")


# -- 03: scale and boundaries ------------------------------------------------------------------


def nc_t3(bound_slack: float, tight_gap: float, scale_error: float,
          margins_at_reference: Mapping[str, float], order_everywhere: bool,
          window: tuple[float, float]) -> Verdict:
    """NC-T3 (``nc_losses/03_scale_and_boundaries``): lower bounds phi, the scalar problem
    and the order of the margins.

    The derivation holds when the smallest L - phi over random logits is >= -1e-12 (the
    bound), the largest |L - phi| at equal non-target logits is <= 1e-12 (tight), and the
    largest |GD margin - t*| / max(1, t*) is <= 1e-3 (the scalar problem sets the scale);
    the order holds at the reference weight decay when the closed-form margins of
    ``margins_at_reference`` (CE, LS, FL, MSE in that order) strictly decrease. A failure of
    any of these four is ``not reproduced``. When all hold, the claim is reproduced if the
    order also holds at every gamma of the grid below the thresholds (``order_everywhere``)
    and ``partially`` if only in the ``window`` of gammas measured. Float64 identities and
    closed forms (round-off ~1e-15; the margins differ by 0.6 and more): margin 0."""
    expected = "phi <= L, tight at equal non-targets; GD = t*; CE > LS > FL > MSE (partially if only in a window of gamma)"
    values = [margins_at_reference.get(loss, math.nan) for loss in LOSSES]
    steps = [a - b for a, b in zip(values, values[1:])]
    least_step = smallest(steps)
    core = {
        "phi <= L": at_least(bound_slack, -1e-12, what="min(L - phi)"),
        "tight": at_most(tight_gap, 1e-12, what="max |L - phi| at equal non-targets"),
        "GD margin = t*": at_most(scale_error, 1e-3, what="max |GD - t*| / max(1, t*)"),
        "order at the reference gamma": decide(not is_missing(least_step) and least_step > 0, "",
                                               "margins " + ", ".join(fmt(v) for v in values) + "."),
    }
    lo, hi = window
    everywhere = decide(bool(order_everywhere), "", f"the order holds for gamma in [{fmt(lo, 2)}, {fmt(hi, 2)}].")
    verdict = all_of({**core, "order at every gamma": everywhere}, expected)
    if any(p.verdict == NOT_REPRODUCED for p in core.values()):
        verdict = Verdict(NOT_REPRODUCED, expected, verdict.note)
    return _summarized(verdict, f"Bounds: min(L - phi) {fmt(bound_slack, 2)}, {fmt(tight_gap, 2)} at equal non-targets; "
                                f"GD margin off t* by {fmt(scale_error, 2)}; margins CE, LS, FL, MSE at the reference "
                                f"{', '.join(fmt(v) for v in values)}, ordered for gamma in [{fmt(lo, 2)}, {fmt(hi, 2)}] "
                                + ("(every gamma of the grid)." if order_everywhere else "only."))


def nc_t4(trivial_norm: float, nontrivial_norm: float, value_gap: float, log_k_gap: float,
          finite: bool, nc2_gap: float, nc1_small_dim: float) -> Verdict:
    """NC-T4 (``nc_losses/03_scale_and_boundaries``): where collapse breaks.

    Parts: (1) GD ends at W = 0 exactly where gamma >= gamma0 predicts it: the largest ||W||
    of the runs predicted trivial is <= 1e-3 and the smallest of the others >= 1e-3;
    (2) GD's value equals the closed form (largest relative gap <= 1e-6) and is log K for
    trivial CE and LS runs (largest relative gap <= 1e-6); (3) the metrics are finite at
    W = H = 0; (4) at d < K - 1 NC2(W), NC2(H) and NC3 sit at our bound (largest gap
    <= 1e-4) while NC1 still collapses (<= 1e-6). Float64 GD and closed forms: the trivial
    norms end at 1e-6 and below, the others at order 1, the gaps at 1e-7 and below: margin 0."""
    expected = "W = H = 0 iff gamma >= gamma0, value l(0) (log K for CE, LS); NC2 at the bound for d < K - 1, NC1 -> 0; finite"
    parts = {
        "trivial beyond gamma0": all_of({
            "trivial runs": at_most(trivial_norm, 1e-3, what="largest ||W|| predicted trivial"),
            "others": at_least(nontrivial_norm, 1e-3, what="smallest ||W|| predicted non-trivial")}, ""),
        "value = closed form": all_of({
            "every run": at_most(value_gap, 1e-6, what="max |f/f* - 1|"),
            "log K for CE, LS": at_most(log_k_gap, 1e-6, what="max |f/log K - 1|")}, ""),
        "finite at W = H = 0": decide(bool(finite), ""),
        "d < K - 1": all_of({
            "NC2 at the bound": at_most(nc2_gap, 1e-4, what="max |NC2 - bound|"),
            "NC1 -> 0": at_most(nc1_small_dim, 1e-6, what="largest NC1")}, ""),
    }
    return _summarized(all_of(parts, expected),
                       f"||W|| at most {fmt(trivial_norm, 2)} beyond gamma0 and at least {fmt(nontrivial_norm, 2)} below; "
                       f"values off the closed form by {fmt(value_gap, 2)} (log K: {fmt(log_k_gap, 2)}); at d < K - 1 NC2 "
                       f"{fmt(nc2_gap, 2)} from the bound, NC1 {fmt(nc1_small_dim, 2)}.")


# -- 04: the landscape ------------------------------------------------------------------------


def nc_l1(start_gap: float, origin_gradient: float, origin_eigenvalue: float,
          origin_closed_form: float, saddle_gradient: float, saddle_eigenvalue: float,
          escape_gap: float, escape_nc2: float) -> Verdict:
    """NC-L1 (``nc_losses/04_landscape``): label smoothing's landscape on the UFM.

    Parts: (1) every random start ends at the closed-form optimal value (largest
    |f/f* - 1| <= 1e-9); (2) the origin W = H = 0 is a critical point (largest |gradient|
    <= 1e-12) whose smallest Hessian eigenvalue is negative (below -1e-6) and equals our
    closed form (relative 1e-8); (3) the rank-deficient point is a critical point (largest
    |gradient| <= 1e-8) with an eigenvalue below -1e-6, and GD from next to it reaches f*
    (relative 1e-9) with NC2(W) <= 1e-3. The eigenvalues come from Lanczos at tolerance 1e-8
    and are -2e-3 and below at ci; the other residuals are round-off: margin 0 beyond the
    1e-6 band that keeps a solver's zero from counting as negative."""
    expected = "every start reaches f*; non-NC critical points have negative curvature (< -1e-6) and GD escapes them"
    closed_gap = (abs(origin_eigenvalue / origin_closed_form - 1)
                  if not (is_missing(origin_eigenvalue) or is_missing(origin_closed_form)) and origin_closed_form
                  else math.nan)
    parts = {
        "random starts reach f*": at_most(start_gap, 1e-9, what="max |f/f* - 1|"),
        "origin is a strict saddle": all_of({
            "critical": at_most(origin_gradient, 1e-12, what="max |gradient|"),
            "negative curvature": at_most(origin_eigenvalue, -1e-6, what="smallest eigenvalue"),
            "= closed form": at_most(closed_gap, 1e-8, what="relative gap")}, ""),
        "rank-deficient point is a strict saddle": all_of({
            "critical": at_most(saddle_gradient, 1e-8, what="max |gradient|"),
            "negative curvature": at_most(saddle_eigenvalue, -1e-6, what="smallest eigenvalue"),
            "GD escapes to f*": at_most(escape_gap, 1e-9, what="|f/f* - 1| after the kick"),
            "and to NC": at_most(escape_nc2, 1e-3, what="NC2(W) after the kick")}, ""),
    }
    return _summarized(all_of(parts, expected),
                       f"Every start within {fmt(start_gap, 2)} of f*; smallest Hessian eigenvalue {fmt(origin_eigenvalue)} at "
                       f"the origin (closed form {fmt(origin_closed_form)}) and {fmt(saddle_eigenvalue)} at the "
                       f"rank-deficient critical point, which GD leaves for f* (gap {fmt(escape_gap, 2)}).")


def nc_l2(focal_negative_margin: float, focal_positive_margins: float, ce_ls_min: float,
          optimum_eigenvalue: float, optimum_gradient: float) -> Verdict:
    """NC-L2 (``nc_losses/04_landscape``): focal loss is benign only locally.

    Parts: (1) FL is not convex in the logits: the smallest eigenvalue of its logit Hessian
    on 1-perp at margin t = -1 is below 0; (2) it is positive definite there for every
    t in [0, 5] (smallest eigenvalue > 0); (3) CE and LS are convex in the logits (smallest
    eigenvalue >= -1e-14 on the whole grid); (4) at the FL optimum of the UFM, a critical
    point (largest |gradient| <= 1e-12), the smallest Hessian eigenvalue is >= -1e-8 (no
    negative curvature; the flat directions are rotations). Exact Hessians in float64
    (-0.057, 4.6e-6 and 6e-3 at ci, round-off ~1e-17): margin 0."""
    expected = "FL's logit Hessian indefinite at negative margins, PD for t in [0, 5]; no negative curvature at the FL optimum"
    parts = {
        "FL indefinite at t = -1": decide(not is_missing(focal_negative_margin) and focal_negative_margin < 0, "",
                                          f"smallest eigenvalue {fmt(focal_negative_margin)}."),
        "FL PD for t in [0, 5]": decide(not is_missing(focal_positive_margins) and focal_positive_margins > 0, "",
                                       f"smallest eigenvalue {fmt(focal_positive_margins)}."),
        "CE, LS convex": at_least(ce_ls_min, -1e-14, what="smallest eigenvalue"),
        "no negative curvature at the FL optimum": all_of({
            "critical": at_most(optimum_gradient, 1e-12, what="max |gradient|"),
            "eigenvalue >= -1e-8": at_least(optimum_eigenvalue, -1e-8, what="smallest eigenvalue")}, ""),
    }
    return _summarized(all_of(parts, expected),
                       f"FL's smallest logit-Hessian eigenvalue {fmt(focal_negative_margin, 2)} at t = -1 and at least "
                       f"{fmt(focal_positive_margins, 2)} for t in [0, 5] (CE, LS at least {fmt(ce_ls_min, 2)}); smallest UFM "
                       f"Hessian eigenvalue at the FL optimum {fmt(optimum_eigenvalue, 2)}.")


# -- 05, 06: trained networks -----------------------------------------------------------------


def _mean(values: Sequence[float | None]) -> float:
    """The mean, NaN when there is none or one is missing (a diverged seed fails the part)."""
    values = list(values)
    if not values or any(is_missing(v) for v in values):
        return math.nan
    return sum(float(v) for v in values) / len(values)


def _sd(values: Sequence[float | None]) -> float:
    """The sample standard deviation of the finite values (0 below two)."""
    data = [float(v) for v in values if not is_missing(v)]
    if len(data) < 2:
        return 0.0
    mean = sum(data) / len(data)
    return math.sqrt(sum((v - mean) ** 2 for v in data) / (len(data) - 1))


#: the metrics that must fall to at most this fraction of their value at initialization
COLLAPSE_METRICS = ("nc1", "nc2_h", "nc3")
COLLAPSE_FRACTION = 0.5


def nc_e1(start: Mapping[str, Mapping[str, Sequence[float]]], end: Mapping[str, Mapping[str, Sequence[float]]],
          chance_nc2_w: Sequence[float], train_acc: Mapping[str, Sequence[float]], target_acc: float) -> Verdict:
    """NC-E1 (``nc_losses/05_networks_collapse``): networks trained with CE, LS, FL and MSE
    collapse while they fit the training set.

    Per loss (``start``/``end``: loss -> metric -> one value per seed, at initialization and
    after the last epoch; ``train_acc``: loss -> final accuracy on the un-augmented NC set per
    seed), three parts:

    * NC1, NC2(H), NC3 fall: the mean over seeds of end/start is at most 1/2, with a dead zone
      of 2 standard errors of those ratios over seeds (``spread_margin``);
    * NC2(W) falls below a random classifier's: with W centred over classes (the code's form) a
      random classifier with d >> K rows is already near a simplex ETF (NC2(W) of order
      sqrt(K/d): about 0.26 for K = 10, d = 128), so halving from initialization is not what the
      metric can show. The part compares the mean over seeds of the final NC2(W) with the mean
      of ``chance_nc2_w`` (NC2(W) of random classifiers drawn like the model's own), with a dead
      zone of 2 standard errors of that difference (sd of the draws / sqrt(seeds), sd of the
      seeds / sqrt(seeds)): reproduced below it, not reproduced above it, undecided within;
    * the training set is fit: the smallest accuracy over seeds is at least ``target_acc`` (a
      count of correct examples against a target that cannot be exceeded at 100%: no dead zone).

    A diverged seed (NaN) fails its parts; a loss missing from ``start`` or ``end`` fails. The
    verdict joins every part of every loss (:func:`~companion.verdicts.all_of`).
    """
    expected = (f"each loss: NC1, NC2(H), NC3 <= {fmt(COLLAPSE_FRACTION)} x their value at initialization "
                f"and NC2(W) below a random classifier's (dead zones of 2 SE over seeds and draws); "
                f"train accuracy >= {fmt(target_acc)}")
    chance = [float(v) for v in chance_nc2_w if not is_missing(v)]
    chance_mean, chance_sd = (sum(chance) / len(chance), _sd(chance)) if chance else (math.nan, math.nan)
    parts: dict[str, Verdict] = {}
    for loss in dict.fromkeys([*LOSSES, *start, *end]):
        begin, finish = start.get(loss, {}), end.get(loss, {})
        loss_parts: dict[str, Verdict] = {}
        for metric in COLLAPSE_METRICS:
            first, last = list(begin.get(metric, [])), list(finish.get(metric, []))
            ratios = ([b / a if not (is_missing(a) or is_missing(b)) and a > 0 else math.nan
                       for a, b in zip(first, last)] if len(first) == len(last) else [])
            loss_parts[metric] = at_most(_mean(ratios), COLLAPSE_FRACTION, spread_margin(ratios),
                                         what=f"{metric} end/start")
        w_end = list(finish.get("nc2_w", []))
        if chance:
            seeds = max(len(w_end), 1)
            margin = 2 * math.sqrt((chance_sd ** 2 + _sd(w_end) ** 2) / seeds)
            loss_parts["nc2_w"] = at_most(_mean(w_end), chance_mean, margin,
                                          what="NC2(W) end against a random classifier's")
        else:
            loss_parts["nc2_w"] = Verdict(NOT_CHECKED, "", "no random classifier drawn.")
        loss_parts["train accuracy"] = at_least(smallest(train_acc.get(loss, [])), target_acc, what="smallest train accuracy")
        parts[loss] = all_of(loss_parts, "")
    worst_ratio = largest([_mean([b / a if a else math.nan for a, b in zip(start.get(loss, {}).get(m, []),
                                                                               end.get(loss, {}).get(m, []))])
                          for loss in dict.fromkeys([*LOSSES, *start, *end]) for m in COLLAPSE_METRICS])
    w_listing = _listing({loss: _mean(end.get(loss, {}).get("nc2_w", [])) for loss in dict.fromkeys([*LOSSES, *end])})
    return _summarized(all_of(parts, expected),
                       f"NC1, NC2(H), NC3 end at most {fmt(worst_ratio, 2)} x their initial value; final NC2(W) "
                       f"{w_listing} against {fmt(chance_mean, 2)} +- {fmt(chance_sd, 2)} (sd, {len(chance)} random "
                       f"classifiers); smallest train accuracy "
                       f"{fmt(smallest([a for accs in train_acc.values() for a in accs]), 3)}.")


def nc_e2(width_drop: float, epoch_drop: float, gap_noise: float, at_scale: bool) -> Verdict:
    """NC-E2 (``nc_losses/06_equal_test_performance``): the test-accuracy gap between CE and
    each other loss shrinks as width and training length grow.

    ``width_drop`` (``epoch_drop``) is the mean gap |Acc_CE - Acc_L| over LS, FL, MSE at the
    smallest width (fewest epochs) minus that at the largest, each averaged over the other axis,
    in points; ``gap_noise`` is the seed noise of one cell's gap (sqrt(2) x the mean seed
    standard deviation of an accuracy / sqrt(seeds); NaN with one seed). Along each axis the
    drop is compared with 0 with ``gap_noise`` as the dead zone (conservative: an averaged drop
    is less noisy than one cell): reproduced above it, not reproduced below minus it (the gap
    grows), undecided within. Both axes shrinking -> reproduced; one -> partially (or partially
    checked when the other is undecided). Without a noise estimate nothing is decided. A grid
    that is not at the claim's scale (``at_scale`` False: the ci toy, an MLP on digits trained
    3-12 epochs) is not checked at this scale, with what it measured in the note."""
    expected = "mean |Acc_CE - Acc_L| falls along width and along epochs by more than the seed noise of a gap"
    if is_missing(gap_noise):
        verdict = Verdict(NOT_CHECKED, expected,
                          f"no seed noise (one seed): drops width {fmt(width_drop)}, epochs {fmt(epoch_drop)} points.")
    else:
        verdict = all_of({"width": at_least(width_drop, 0.0, gap_noise, what="drop along width (points)"),
                          "epochs": at_least(epoch_drop, 0.0, gap_noise, what="drop along epochs (points)")},
                         expected, f"seed noise of a gap {fmt(gap_noise)} points.")
    measured = (f"Mean gap to CE drops {fmt(width_drop, 2)} points along width and {fmt(epoch_drop, 2)} along epochs, "
                f"seed noise of a gap {fmt(gap_noise, 2)}.")
    if at_scale:
        return _summarized(verdict, measured)
    return unless_at_scale(verdict, at_scale, measured + " A toy grid (small MLP on digits, a few epochs) cannot speak for "
                                              "large networks trained to convergence.")
