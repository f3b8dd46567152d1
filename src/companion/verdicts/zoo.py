"""Verdict rules of the cross-paper loss zoo (``notebooks/zoo/``): our own findings from putting
every loss of the four papers on one pipeline, not statements of any paper.

One function per claim, named after it (``Z-6b`` -> :func:`z_6b`). Each takes the measurements
a notebook made and returns a :class:`~companion.verdicts.Verdict`; its docstring states the
rule in words and names the notebook.

* ``01_ufm_all_losses`` (Z-1..Z-4) is float64 gradient descent of the unconstrained-features
  model, deterministic and not chaotic: its NC metrics and errors sit orders of magnitude from
  their thresholds. Where a measurement comes per seed, the dead zone is 2 standard errors of the
  seeds (:func:`~companion.verdicts.spread_margin`); the closed-form comparisons keep margin 0
  and say so.
* ``02_networks_all_losses`` (Z-5..Z-8) trains small networks with SGD; their accuracies,
  collapse and calibration move with the seed and with the last bits of the CPU. Every comparison
  carries a dead zone sized from the seed-to-seed spread measured in the run (and, for the ratio
  claims, on a log scale), and the claims about the terminal phase need the networks to be in it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from . import (
    NOT_CHECKED,
    NOT_REPRODUCED,
    REPRODUCED,
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


def _values(values: Sequence[float | None]) -> list[float]:
    return [math.nan if is_missing(v) else float(v) for v in values]


def _worst_at_most(values: Sequence[float | None], threshold: float, what: str) -> Verdict:
    """The largest of per-seed ``values`` at most ``threshold``, dead zone 2 SE of the seeds;
    a missing (diverged) seed fails; none: not checked."""
    data = _values(values)
    if not data:
        return Verdict(NOT_CHECKED, f"{what} <= {fmt(threshold)}", f"{what}: none measured.")
    worst = math.nan if any(math.isnan(v) for v in data) else max(data)
    return at_most(worst, threshold, spread_margin(data), what=what)


def _least_at_least(values: Sequence[float | None], threshold: float, what: str) -> Verdict:
    """The smallest of per-seed ``values`` at least ``threshold`` (mirror of :func:`_worst_at_most`)."""
    data = _values(values)
    if not data:
        return Verdict(NOT_CHECKED, f"{what} >= {fmt(threshold)}", f"{what}: none measured.")
    least = math.nan if any(math.isnan(v) for v in data) else min(data)
    return at_least(least, threshold, spread_margin(data), what=what)


# -- 01_ufm_all_losses ---------------------------------------------------------------------------


def z_1(reach: Mapping[str, Sequence[float | None]], unhinged_nc2_w: Sequence[float | None], *,
        tolerance: float = 1e-3, unhinged_floor: float = 0.1) -> Verdict:
    """Z-1, ``notebooks/zoo/01_ufm_all_losses``: every bounded-below loss reaches neural collapse
    in the UFM, the unhinged loss does not.

    ``reach`` maps each bounded-below configuration (ce, ls, focal, mse, rooted, rooted_gce, and
    ce under the dynamical schedule, under our last-period protocol and under the official rule)
    to the worst of its four NC metrics per seed; each part holds if the largest over seeds is
    below ``tolerance``. The unhinged part holds if its NC2(W) stays above ``unhinged_floor`` on
    every seed. Dead zones: 2 standard errors over the seeds. The runs are deterministic float64
    GD, which a last-bit change of the CPU moves by about 1e-13: the static losses end 1e-5 and
    more below the tolerance, the dynamical runs at about half of it (5e-4 and 6e-4 at ci, after a
    plain period of 100 and 90 steps). A diverged (NaN) run fails its part.
    """
    parts: dict[str, Verdict] = {
        f"{name} reaches NC": _worst_at_most(values, tolerance, f"{name}: worst NC metric")
        for name, values in reach.items()}
    parts["unhinged does not"] = _least_at_least(unhinged_nc2_w, unhinged_floor, "unhinged NC2(W)")
    return all_of(parts, f"every bounded-below run: NC1, NC2(W), NC2(H), NC3 < {fmt(tolerance)} on every "
                         f"seed; unhinged: NC2(W) > {fmt(unhinged_floor)}",
                  "Our finding, not a paper's statement.")


def z_2(rooted_errors: Mapping[str, float | None], closed_form_errors: Mapping[str, float | None], *,
        tolerance: float = 1e-5) -> Verdict:
    """Z-2, ``notebooks/zoo/01_ufm_all_losses``: gradient descent matches the NC point of the
    scalar problem for the rooted losses as closely as the closed forms of the four NC losses.

    Each value is the largest relative error (over seeds, margin, norms and objective) of one
    loss's GD end point against its prediction. Reproduced if both families stay below
    ``tolerance``. The errors are residuals of deterministic float64 GD (1e-9 and below, the
    slowest loss, focal, about 6e-6 at ci) that a last-bit change of the CPU moves by about 1e-13,
    so no dead zone (margin 0). No loss of a family measured: not checked.
    """
    def family(errors: Mapping[str, float | None], what: str) -> Verdict:
        if not errors:
            return Verdict(NOT_CHECKED, "", f"{what}: none measured.")
        values = _values(list(errors.values()))
        worst = math.nan if any(math.isnan(v) for v in values) else max(values)
        listed = ", ".join(f"{k} {fmt(v, 2)}" for k, v in errors.items())
        return at_most(worst, tolerance, what=f"{what}: max rel. error").noted(f"({listed}.)")

    return all_of({"rooted losses (scalar problem)": family(rooted_errors, "rooted"),
                   "ce/ls/focal/mse (closed forms)": family(closed_form_errors, "closed forms")},
                  f"GD = the NC scalar problem's margin, norms and value to {fmt(tolerance)} (as for the closed forms)",
                  "The scalar problem is our derivation, solved with brentq; for rooted_gce (its bound is not "
                  "convex) the NC global minimizer is supported by the GD runs only.")


def z_3(growth_below: Sequence[float], growth_at: Sequence[float], growth_above: Sequence[float], *,
        nc1: Sequence[float], e1_gap: float, nc2_w: Sequence[float], limit_error: float) -> Verdict:
    """Z-3, ``notebooks/zoo/01_ufm_all_losses``: the unhinged loss with weight decay in the UFM.

    Parts: the norms explode below lambda* (|W| grows by more than 1e3 on every seed), stay
    finite at lambda* (between 0.1 and 10 times the start) and vanish above (below 1e-3); NC1 <
    1e-8 in every regime; NC2(W) equals that of the initialization's E1+ component (to 1e-6) and
    stays above 0.1; at lambda* GD lands on Corollary 5's limit (relative error < 1e-8). These are
    the closed forms of linear dynamics in float64, met to round-off or by orders of magnitude, so
    no dead zone (margin 0).
    """
    def each(values: Sequence[float], low: float | None, high: float | None, what: str) -> Verdict:
        data = _values(values)
        if not data:
            return Verdict(NOT_CHECKED, "", f"{what}: none measured.")
        if any(math.isnan(v) for v in data):
            return Verdict(NOT_REPRODUCED, "", f"{what}: nan (a diverged run).")
        bounds = {}
        if low is not None:
            bounds[f"min >= {fmt(low)}"] = at_least(min(data), low, what=f"min {what}")
        if high is not None:
            bounds[f"max <= {fmt(high)}"] = at_most(max(data), high, what=f"max {what}")
        return all_of(bounds, "")

    return all_of({
        "explode below lambda*": each(growth_below, 1e3, None, "|W| end/start"),
        "finite at lambda*": each(growth_at, 0.1, 10.0, "|W| end/start"),
        "vanish above": each(growth_above, None, 1e-3, "|W| end/start"),
        "NC1 -> 0": each(nc1, None, 1e-8, "NC1"),
        "classifier keeps E1+(init)": all_of({
            "NC2(W) = E1+(init)'s": at_most(e1_gap, 1e-6, what="|NC2(W) - NC2(W) of E1+(init)|"),
            "NC2(W) of order 1": each(nc2_w, 0.1, None, "NC2(W)")}, ""),
        "Corollary 5 limit at lambda*": at_most(limit_error, 1e-8, what="relative error"),
    }, "trichotomy at lambda*, NC1 -> 0, NC2(W) stays the initialization's (closed forms, margin 0)",
        "Corollary 5 of the unhinged paper (gamma = 1/(C-1)); unhinged/03_weight_decay checks its closed forms.")


def _dynamical_parts(stats: Mapping[str, Sequence[float]] | None, tolerance: float, prefix: str) -> dict[str, Verdict]:
    if stats is None:
        return {f"{prefix}not run": Verdict(NOT_CHECKED, "", "not run.")}
    no_plain = Verdict(NOT_CHECKED, "", "no plain last period at this length.")
    plain = bool(stats.get("last_period_plain", True))
    return {
        f"{prefix}NC1 small while oscillating": _worst_at_most(stats["nc1_oscillating"], 1e-6, "max NC1"),
        f"{prefix}leaves the ETF while oscillating": _least_at_least(stats["nc2_w_oscillating"], 0.1,
                                                                     "max NC2(W) (smallest over seeds)"),
        f"{prefix}NC after the plain period": (_worst_at_most(stats["final_nc"], tolerance, "final worst NC")
                                                if plain else no_plain),
        f"{prefix}CE's optimum after the plain period": (_worst_at_most(stats["objective_error"], 1e-6,
                                                                        "|f / f*_CE - 1|") if plain else no_plain),
    }


def z_4(ours: Mapping[str, Sequence[float]] | None, official: Mapping[str, Sequence[float]] | None, *,
        tolerance: float = 1e-3) -> Verdict:
    """Z-4, ``notebooks/zoo/01_ufm_all_losses``: under the dynamical schedule the UFM keeps NC1
    small but leaves the simplex ETF while a class is emphasized, and a plain last period returns
    it to cross-entropy's NC optimum.

    ``ours`` and ``official`` hold per-seed measurements of the run under our last-period protocol
    (a whole number of periods, the last one plain) and under the official code's
    ``last_period_no_osc`` rule in its own convention (total steps a multiple of T, a shorter plain
    remainder): the largest NC1 and NC2(W) in the second half of the oscillating phase, the final
    worst NC metric and the final objective's relative distance to CE's optimum. Each run's parts:
    max NC1 < 1e-6, max NC2(W) > 0.1, final NC < ``tolerance``, objective within 1e-6 of CE's.
    Dead zones: 2 SE over the seeds. Both rules are judged; a part that fails under one rule only
    makes the claim 'partially' (where they differ is in the note).
    """
    parts = {**_dynamical_parts(ours, tolerance, "our protocol: "),
             **_dynamical_parts(official, tolerance, "official rule: ")}
    return all_of(parts, "NC1 < 1e-6 and NC2(W) > 0.1 while oscillating; NC and CE's optimum after the plain "
                         "period, under our last-period protocol and the official rule",
                  "The paper's run is A = 70, T = 5000 on a 3-class spiral network, not the UFM.")


# -- 02_networks_all_losses ----------------------------------------------------------------------


def _mean_se(values: Sequence[float | None]) -> tuple[float, float, int]:
    """Mean, standard error of the mean (NaN below 2 values) and count; NaN mean if any is missing."""
    data = _values(values)
    if not data or any(math.isnan(v) for v in data):
        return math.nan, math.nan, len(data)
    mean = sum(data) / len(data)
    if len(data) < 2:
        return mean, math.nan, 1
    var = sum((v - mean) ** 2 for v in data) / (len(data) - 1)
    return mean, math.sqrt(var / len(data)), len(data)


def _gap(values: Sequence[float | None], reference: Sequence[float | None]) -> tuple[float, float]:
    """Difference of means (values - reference) and 2 standard errors of it (0 if a side has one seed)."""
    mean, se, _ = _mean_se(values)
    ref, ref_se, _ = _mean_se(reference)
    spread = math.sqrt(sum(s**2 for s in (se, ref_se) if not math.isnan(s)))
    return mean - ref, 2 * spread


def z_5(accuracy: Mapping[str, Sequence[float | None]], *, diverged: Mapping[str, int] | None = None,
        tolerance: float = 0.02, reference: str = "ce") -> Verdict:
    """Z-5, ``notebooks/zoo/02_networks_all_losses``: under one protocol every bounded-below
    configuration ends within ``tolerance`` of cross-entropy's test accuracy (mean over seeds).

    ``accuracy`` maps each configuration (the reference ``ce`` included) to its per-seed test
    accuracies (NaN for a diverged run). Per configuration: |mean - mean_CE| <= ``tolerance``,
    with a dead zone of 2 standard errors of that difference measured over the seeds (0 where a
    side has a single seed: nothing measured, said in the note); a diverged run fails. A part
    'no divergence' counts the diverged runs (``diverged``).
    """
    expected = f"every |acc - acc_CE| <= {fmt(tolerance)} (beyond 2 SE of the seeds), no divergence"
    if reference not in accuracy or not accuracy[reference]:
        return Verdict(NOT_CHECKED, expected, "no cross-entropy run.")
    parts: dict[str, Verdict] = {}
    for name, values in accuracy.items():
        if name == reference:
            continue
        gap, margin = _gap(values, accuracy[reference])
        parts[name] = at_most(abs(gap) if not math.isnan(gap) else gap, tolerance, margin,
                              what=f"|{name} - {reference}|")
    if diverged is not None:
        count = sum(int(v) for v in diverged.values())
        parts["no divergence"] = decide(count == 0, "", f"{count} diverged run(s).")
    one_seed = min(len(v) for v in accuracy.values()) < 2
    return all_of(parts, expected, "One seed per configuration: no seed spread measured, no dead zone."
                  if one_seed else "")


def z_6(unhinged: Sequence[float | None], reference: Sequence[float | None], *, drop: float = 0.10) -> Verdict:
    """Z-6, ``notebooks/zoo/02_networks_all_losses``: the unhinged loss with a learned classifier
    does not train under the protocol: on every seed its loss diverges (NaN accuracy) or its test
    accuracy stays more than ``drop`` below cross-entropy's mean.

    A diverged seed counts as failing to train. Otherwise the smallest shortfall (CE's mean minus
    the seed's accuracy) must exceed ``drop`` beyond 2 standard errors of CE's seeds.
    """
    expected = f"every seed diverges or ends more than {fmt(drop)} below CE's test accuracy"
    data = _values(unhinged)
    if not data:
        return Verdict(NOT_CHECKED, expected, "no unhinged run.")
    ref, ref_se, _ = _mean_se(reference)
    trained = [v for v in data if not math.isnan(v)]
    if not trained:
        return Verdict(REPRODUCED, expected, f"every seed diverged ({len(data)} of {len(data)}).")
    margin = 0.0 if math.isnan(ref_se) else 2 * ref_se
    return at_least(ref - max(trained), drop, margin, expected=expected,
                    what="smallest shortfall below CE").noted(f"({len(data) - len(trained)} of {len(data)} diverged.)")


def z_6b(pal: Sequence[float | None], reference: Sequence[float | None], *, tolerance: float = 0.02) -> Verdict:
    """Z-6b, ``notebooks/zoo/02_networks_all_losses``: with the prototype-anchored head the
    unhinged loss trains: its mean test accuracy is at most ``tolerance`` below cross-entropy's,
    with a dead zone of 2 standard errors of the difference over the seeds; a diverged seed fails."""
    expected = f"acc_CE - acc_PAL <= {fmt(tolerance)} (beyond 2 SE of the seeds)"
    if not pal:
        return Verdict(NOT_CHECKED, expected, "no PAL run.")
    gap, margin = _gap(reference, pal)
    return at_most(gap, tolerance, margin, expected=expected, what="acc_CE - acc_PAL")


def _log_spread(values: Mapping[str, Sequence[float | None]]) -> tuple[float, float, str, str]:
    """log(max/min) of the configurations' geometric means, its dead zone (2 SE of the two log
    means, combined) and the names of the largest and the smallest."""
    logs = {}
    for name, vals in values.items():
        data = _values(vals)
        if not data or any(math.isnan(v) or v <= 0 for v in data):
            return math.nan, 0.0, name, name
        logs[name] = _mean_se([math.log(v) for v in data])
    top = max(logs, key=lambda k: logs[k][0])
    bottom = min(logs, key=lambda k: logs[k][0])
    ses = [logs[k][1] for k in (top, bottom) if not math.isnan(logs[k][1])]
    return logs[top][0] - logs[bottom][0], 2 * math.sqrt(sum(s**2 for s in ses)), top, bottom


def z_7(nc1: Mapping[str, Sequence[float | None]], reached: Mapping[str, int], seeds: int, *,
        factor: float = 3.0, target: float = 0.99) -> Verdict:
    """Z-7, ``notebooks/zoo/02_networks_all_losses``: networks in the terminal phase end with the
    same degree of within-class collapse for every bounded-below configuration: the largest
    geometric-mean NC1 over the smallest is at most ``factor``.

    Compared on a log scale with a dead zone of 2 standard errors of the two log means over the
    seeds. The claim is about the terminal phase, so it is judged only where every configuration
    reached the target training accuracy on every seed (``reached`` counts the seeds that did);
    otherwise it is not checked at this scale, with what the stand-in measured in the note.
    """
    expected = f"NC1 max/min <= {fmt(factor)} among networks in the terminal phase"
    if not nc1:
        return Verdict(NOT_CHECKED, expected, "no run.")
    spread, margin, top, bottom = _log_spread(nc1)
    verdict = at_most(spread, math.log(factor), margin, expected=expected, what="log(NC1 max/min)").noted(
        f"(NC1 max/min = {fmt(math.exp(spread)) if not math.isnan(spread) else 'nan'}: {top} / {bottom}.)")
    in_phase = all(reached.get(name, 0) >= seeds for name in nc1)
    counts = ", ".join(f"{name} {reached.get(name, 0)}/{seeds}" for name in nc1)
    return unless_at_scale(verdict, in_phase, f"Not the terminal phase: seeds reaching {fmt(target)} training "
                                              f"accuracy: {counts}.")


def z_8(ece: Mapping[str, Sequence[float | None]], accuracy: Verdict, *, factor: float = 3.0) -> Verdict:
    """Z-8, ``notebooks/zoo/02_networks_all_losses``: the loss moves calibration much more than
    accuracy: the largest geometric-mean ECE over the smallest exceeds ``factor`` (log scale, dead
    zone 2 SE of the two log means over the seeds) while the accuracies stay within Z-5's
    tolerance (``accuracy`` is Z-5's verdict)."""
    spread, margin, top, bottom = _log_spread(ece)
    calibration = at_least(spread, math.log(factor), margin, what="log(ECE max/min)").noted(
        f"(ECE max/min = {fmt(math.exp(spread)) if not math.isnan(spread) else 'nan'}: {top} / {bottom}.)")
    return all_of({"ECE spread": calibration, "accuracies within Z-5's tolerance": accuracy},
                  f"ECE max/min > {fmt(factor)} (beyond 2 SE) with the accuracies within Z-5's tolerance")
