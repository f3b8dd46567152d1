"""The verdict rules of the unhinged-loss paper, table-driven: NaN, empty, diverged and borderline inputs."""

import math

import pytest

from companion import verdicts as v
from companion.verdicts import unhinged as rules

NAN = float("nan")
OK_T2 = dict(decomposition_residual=1e-14, closed_vs_expm=1e-13, gd_vs_discrete=1e-13, flow_over_first_order=1.0,
             bias_vs_eq7=1e-14)


@pytest.mark.parametrize("change, expected", [
    ({}, v.REPRODUCED),
    ({"gd_vs_discrete": 1e-9}, v.REPRODUCED),             # on the threshold: exact math, >= holds
    ({"gd_vs_discrete": 2e-9}, v.PARTIALLY),              # one part fails beside parts that hold
    ({"flow_over_first_order": NAN}, v.PARTIALLY),        # a diverged run is a failed part
    ({k: 3.0 for k in OK_T2}, v.NOT_REPRODUCED),
])
def test_u_t2(change, expected):
    assert rules.u_t2(**{**OK_T2, **change}).verdict == expected


OK_C3 = dict(exponent_ratios=[0.99, 1.01], gd_vs_discrete=1e-13, train_acc_below=[1.0, 1.0], dir_error_beyond=[1.41],
             paper_size_sqrt2_gap=1e-15)


@pytest.mark.parametrize("change, expected", [
    ({}, v.REPRODUCED),
    ({"exponent_ratios": [0.85]}, v.PARTIALLY),
    ({"exponent_ratios": [1.0, NAN]}, v.PARTIALLY),
    ({"exponent_ratios": []}, v.PARTIALLY_CHECKED),       # no gamma below the bound: that part not run
    ({"dir_error_beyond": [], "paper_size_sqrt2_gap": None}, v.PARTIALLY_CHECKED),
    ({"train_acc_below": [1.0, 0.99]}, v.PARTIALLY),
    ({"dir_error_beyond": [0.3]}, v.PARTIALLY),
])
def test_u_c3(change, expected):
    assert rules.u_c3(**{**OK_C3, **change}).verdict == expected


@pytest.mark.parametrize("argmax, upper, fastest, expected", [
    (1 / 9 + 4e-5, 0.25 - 9e-5, 1 / 9, v.REPRODUCED),
    (1 / 9 + 1.2e-4, 0.25, 1 / 9, v.REPRODUCED),          # within one grid step
    (0.2, 0.25, 1 / 9, v.PARTIALLY),
    (0.2, 0.3, 0.2, v.NOT_REPRODUCED),
    (1 / 9, 0.25, NAN, v.PARTIALLY_CHECKED),              # no gradient-descent run below the bound
])
def test_u_i6(argmax, upper, fastest, expected):
    verdict = rules.u_i6(argmax_gamma=argmax, positive_upper=upper, fastest_gd_gamma=fastest, num_classes=10,
                         grid_step=1.25e-4)
    assert verdict.verdict == expected


@pytest.mark.parametrize("flow, bias, expected", [
    (3e-3, 1e-13, v.REPRODUCED), (0.05, 1e-13, v.PARTIALLY), (NAN, NAN, v.PARTIALLY),
])
def test_u_t4(flow, bias, expected):
    verdict = rules.u_t4(closed_vs_expm=1e-14, gd_vs_discrete=1e-13, bias_vs_eq14=bias, gd_vs_flow=flow)
    assert verdict.verdict == expected


@pytest.mark.parametrize("regimes, ratio, expected", [
    (["bounded", "explode", "vanish"], 1.0, v.REPRODUCED),
    (["bounded", "bounded", "vanish"], 1.0, v.PARTIALLY),
    ([], 1.0, v.PARTIALLY_CHECKED),
    (["bounded", "explode", "vanish"], 1.06, v.PARTIALLY),
])
def test_u_c5(regimes, ratio, expected):
    predicted = ["bounded", "explode", "vanish"]
    verdict = rules.u_c5(limit_error=1e-13, regimes=regimes, predicted_regimes=predicted if regimes else [],
                         direction_rate_ratio=ratio)
    assert verdict.verdict == expected
    if regimes == ["bounded", "bounded", "vanish"]:
        assert "bounded (predicted explode)" in verdict.note


def test_u_i5_reads_the_regime_off_lambda_star():
    star = 3.19e-3
    good = {0.0: "explode", 1e-3: "explode", star: "bounded", 5e-3: "vanish"}
    assert rules.regime_of_lambda(star * (1 + 1e-12), star) == "bounded"
    assert rules.u_i5(paper_regimes=good, lambda_star=star, gd_regimes=["explode"], gd_predicted=["explode"]).verdict \
        == v.REPRODUCED
    wrong = {**good, 1e-3: "bounded"}
    assert rules.u_i5(paper_regimes=wrong, lambda_star=star, gd_regimes=["explode"], gd_predicted=["explode"]).verdict \
        == v.PARTIALLY


@pytest.mark.parametrize("by_eta, by_s, expected", [
    ([6e6, 6e5, 6e4], [1e6, 2e5, 1e4], v.REPRODUCED),
    ([6e6, 6e5, 6e5], [1e6, 2e5, 1e4], v.PARTIALLY),      # a tie is not faster
    ([6e6, NAN, 6e4], [1e6, 2e5, 1e4], v.PARTIALLY),      # a run that never converged
    ([6e6], [1e6], v.NOT_CHECKED),
])
def test_u_i7(by_eta, by_s, expected):
    assert rules.u_i7(iterations_by_eta=by_eta, iterations_by_s=by_s).verdict == expected


@pytest.mark.parametrize("nc1, distance, gap, expected", [
    (1e-30, 0.15, 0.7, v.REPRODUCED),
    (1e-30, 1e-3, 0.7, v.PARTIALLY),                      # the limit an ETF: the claim's "not an ETF" fails
    (NAN, 0.15, 0.7, v.PARTIALLY),
])
def test_u_p1(nc1, distance, gap, expected):
    assert rules.u_p1(nc1=nc1, min_cos_hw=1.0, etf_distance=distance, init_gap=gap).verdict == expected


@pytest.mark.parametrize("floor, at_5k, expected", [
    ([3.2e4, 7e3], [1.0, 0.4, 1e-16], v.REPRODUCED),
    ([NAN, 7e3], [1.0, 0.4, 1e-16], v.PARTIALLY),
    ([3.2e4, 7e3], [1.0, 1.0, 1e-16], v.PARTIALLY),
    ([], [], v.PARTIALLY_CHECKED),
])
def test_u_t6(floor, at_5k, expected):
    verdict = rules.u_t6(gd_vs_discrete=1e-13, slope_ratios=[1.0, 1.01], limit_error=1e-12,
                         iterations_to_floor=floor, errors_at_5k=at_5k)
    assert verdict.verdict == expected


@pytest.mark.parametrize("norms, converge, recursion, expected", [
    (True, True, 1e-10, v.REPRODUCED),
    (False, True, 1e-10, v.PARTIALLY),
    (True, True, NAN, v.PARTIALLY),
    (False, False, 1.0, v.PARTIALLY),
])
def test_u_t7(norms, converge, recursion, expected):
    verdict = rules.u_t7(recursion_vs_gd_error=recursion, recursion_vs_gd_norm=1e-15, cosine_form_vs_gd=1e-15,
                         ufm_vs_independent_gd=1e-15, norms_non_decreasing=norms, errors_decrease=converge)
    assert verdict.verdict == expected


@pytest.mark.parametrize("covered, converged, monotone, expected", [
    (2, 2, 2, v.REPRODUCED), (2, 1, 2, v.NOT_REPRODUCED), (0, 0, 0, v.NOT_CHECKED),
])
def test_u_p2(covered, converged, monotone, expected):
    assert rules.u_p2(runs_meeting_condition=covered, converged=converged, norms_monotone=monotone).verdict == expected


@pytest.mark.parametrize("plain, rlr, paper_plain, paper_rlr, expected", [
    ([12833, 1290], [1934, 194], [9e-8], [0.0], v.REPRODUCED),
    ([NAN, 1290], [1934, 194], [9e-8], [0.0], v.REPRODUCED),     # plain never got there, RLR did
    ([1000, 1290], [1934, 194], [9e-8], [0.0], v.PARTIALLY),
    ([1000], [NAN], [9e-8], [NAN], v.NOT_REPRODUCED),             # RLR diverged
    ([], [], [], [], v.NOT_CHECKED),
])
def test_u_i4(plain, rlr, paper_plain, paper_rlr, expected):
    verdict = rules.u_i4(steps_plain=plain, steps_rlr=rlr, paper_final_plain=paper_plain, paper_final_rlr=paper_rlr)
    assert verdict.verdict == expected


@pytest.mark.parametrize("gaps, distances, beyond, expected", [
    ([0.0, 0.0], [0.75, 0.89], 5.2, v.NOT_REPRODUCED),           # counterexamples refute it whatever else holds
    ([0.0], [1e-16], None, v.PARTIALLY_CHECKED),                  # only ETF minimizers found; beyond not run
    ([0.0], [1e-16], 1e-9, v.REPRODUCED),
    ([0.0], [1e-16], 0.7, v.NOT_REPRODUCED),                      # the value is wrong beyond the range
    ([1e-3], [0.75], 1e-9, v.REPRODUCED),                         # not a minimizer: no counterexample
    ([NAN], [0.75], 1e-9, v.REPRODUCED),
    ([], [], 1e-9, v.PARTIALLY_CHECKED),
])
def test_u_l1(gaps, distances, beyond, expected):
    verdict = rules.u_l1(value_gap_inside=1e-10, minimizer_gaps=gaps, minimizer_etf_distances=distances,
                         beyond_gap=beyond, c3_is_etf=True)
    assert verdict.verdict == expected
    if expected == v.NOT_REPRODUCED:
        assert verdict.note.startswith("A necessary part fails")


@pytest.mark.parametrize("unhinged, mse, expected", [
    (5e-16, 0.64, v.REPRODUCED), (5e-16, 1e-5, v.PARTIALLY), (0.1, 1e-5, v.NOT_REPRODUCED),
])
def test_u_t8(unhinged, mse, expected):
    change = dict(ntk_change=0.0, ntk_formula=0.0, gd_vs_discrete=1e-14)
    if expected == v.NOT_REPRODUCED:
        change = dict(ntk_change=1.0, ntk_formula=1.0, gd_vs_discrete=1.0)
    verdict = rules.u_t8(**change, superposition_unhinged=unhinged, superposition_mse=mse)
    assert verdict.verdict == expected


def test_helpers():
    assert rules.accuracy_se(0.9, 100) == pytest.approx(0.03, rel=0.02)
    assert rules.accuracy_se(1.0, 100) > 0.005  # a rate of 1 still has about 1/n of uncertainty
    tie = rules.accuracy_se(1.0, 10_000) * 100 * math.sqrt(2)
    assert rules.u_e4(fpr_drops={"CE energy": [0.0]}, standard_errors={"CE energy": tie},
                      at_scale=True).verdict == v.UNDECIDED    # FPR95 100 -> 100 is no drop
    assert math.isnan(rules.accuracy_se(NAN, 100)) and math.isnan(rules.accuracy_se(0.9, 0))
    assert rules.paired_se([1.0, 3.0]) == pytest.approx(1.0)
    assert math.isnan(rules.paired_se([1.0])) and math.isnan(rules.paired_se([]))


@pytest.mark.parametrize("diverged, runs, control, expected", [
    (3, 3, 0, v.REPRODUCED), (0, 3, 0, v.NOT_REPRODUCED), (2, 3, 0, v.PARTIALLY), (3, 3, 1, v.PARTIALLY),
    (0, 0, 0, v.NOT_CHECKED),
])
def test_u_i1(diverged, runs, control, expected):
    assert rules.u_i1(diverged_runs=diverged, runs=runs, control_diverged=control, first_nan_epoch=3).verdict == expected


@pytest.mark.parametrize("gaps, expected", [
    ({"EFR": [0.001, -0.002, 0.003], "FNPAL": [0.004, 0.009, 0.004]}, v.REPRODUCED),
    ({"EFR": [0.001, -0.002, 0.003], "PAL": [-0.74, -0.77, -0.79]}, v.PARTIALLY),
    ({"PAL": [-0.74, -0.77, -0.79]}, v.NOT_REPRODUCED),
    ({"EFR": [0.001, NAN, 0.003]}, v.NOT_REPRODUCED),                 # a diverged seed fails its variant
    ({"EFR": [-0.005, -0.02, 0.01]}, v.UNDECIDED),                    # the interval straddles -margin
    ({"EFR": [0.001]}, v.NOT_CHECKED),                                # one seed, no SE given
    ({}, v.NOT_CHECKED),
])
def test_u_i2(gaps, expected):
    assert rules.u_i2(gaps=gaps, margin=0.01).verdict == expected


def test_u_i2_takes_a_binomial_se_for_one_seed():
    verdict = rules.u_i2(gaps={"UL (PAL) vs CE": [-0.2]}, margin=1.0, standard_errors={"UL (PAL) vs CE": 0.3},
                         unit="accuracy (points)")
    assert verdict.verdict == v.REPRODUCED
    assert rules.u_i2(gaps={"x": [-0.9]}, margin=1.0, standard_errors={"x": 0.3}).verdict == v.UNDECIDED


@pytest.mark.parametrize("ratio, efr_norm, acc_plain, expected", [
    ([17.1, 17.4, 17.3], [8.2, 8.1, 8.1], [0.2, 0.21, 0.2], v.REPRODUCED),
    ([NAN, 17.4, 17.3], [8.2, 8.1, 8.1], [NAN, 0.21, 0.2], v.REPRODUCED),   # plain PAL diverged: blown up, below
    ([math.inf, 17.4], [8.2, 8.1], [0.2, 0.21], v.REPRODUCED),
    ([0.1, 0.2, 0.15], [8.2, 8.1, 8.1], [0.96, 0.97, 0.97], v.PARTIALLY),  # no blow-up, no accuracy gap
    ([3.0, 3.1, 2.9], [8.2, 8.1, 8.1], [0.2, 0.21, 0.2], v.PARTIALLY_CHECKED),  # ratio inside the dead zone
    ([17.1, 17.4, 17.3], [150.0, 160.0, 155.0], [0.2, 0.21, 0.2], v.PARTIALLY),
])
def test_u_i3(ratio, efr_norm, acc_plain, expected):
    verdict = rules.u_i3(log10_norm_ratio=ratio, efr_norm=efr_norm, acc_efr=[0.97] * len(ratio), acc_plain=acc_plain)
    assert verdict.verdict == expected


@pytest.mark.parametrize("settings, expected", [
    ({"BN": ([0.12, 0.11, 0.11], [0.015, 0.01, 0.012])}, v.REPRODUCED),
    ({"BN": ([0.12, 0.11, 0.11], [0.015, 0.006, 0.0])}, v.PARTIALLY_CHECKED),   # accuracy gain inside 2 SE
    ({"no BN": ([-0.04, -0.045, -0.043], [-0.007, -0.007, -0.011]),
      "BN": ([0.12, 0.11, 0.11], [0.015, 0.006, 0.0])}, v.PARTIALLY),
    ({"BN": ([NAN, 0.11, 0.11], [0.015, 0.01, 0.012])}, v.PARTIALLY),           # a diverged run fails its part
    ({"BN": ([0.12], [0.01])}, v.NOT_CHECKED),                                  # one seed: no dead zone to size
])
def test_u_i4_digits(settings, expected):
    assert rules.u_i4_digits(settings=settings).verdict == expected


def test_u_e1_is_not_checked_away_from_scale_and_decides_at_it():
    gaps = {"UL (PAL) vs CE": [-0.3], "UL (FNPAL) vs CE": [0.4]}
    se = {"UL (PAL) vs CE": 0.3, "UL (FNPAL) vs CE": 0.3}
    at_gpu = rules.u_e1(gaps=gaps, standard_errors=se, losses_finite=True, prototypes_frozen=True, at_scale=True)
    assert at_gpu.verdict == v.REPRODUCED
    at_ci = rules.u_e1(gaps=gaps, standard_errors=se, losses_finite=True, prototypes_frozen=True, at_scale=False,
                       why="ci: code paths only.")
    assert at_ci.verdict == v.NOT_CHECKED and "would say 'reproduced'" in at_ci.note
    moved = rules.u_e1(gaps=gaps, standard_errors=se, losses_finite=True, prototypes_frozen=False, at_scale=True)
    assert moved.verdict == v.PARTIALLY
    diverged = rules.u_e1(gaps={"UL (PAL) vs CE": [NAN]}, standard_errors=None, losses_finite=False,
                          prototypes_frozen=True, at_scale=True)
    assert diverged.verdict == v.PARTIALLY     # the frozen prototypes still held


@pytest.mark.parametrize("plain, rlr, expected", [
    ([6.0], [3.0], v.REPRODUCED), ([6.0], [5.0], v.UNDECIDED),      # one seed: one epoch of dead zone
    ([NAN], [8.0], v.REPRODUCED),                                   # plain never reached it: counted as 11
    ([NAN], [NAN], v.NOT_CHECKED), ([3.0], [NAN], v.NOT_REPRODUCED), ([], [], v.NOT_CHECKED),
    ([6.0, 7.0, 6.0], [5.0, 5.0, 5.0], v.REPRODUCED),
])
def test_u_i4_cifar(plain, rlr, expected):
    assert rules.u_i4_cifar(epochs_plain=plain, epochs_rlr=rlr, epochs=10).verdict == expected


@pytest.mark.parametrize("gains, se, expected", [
    ({"rho=100: UL - CE": [4.8], "rho=100: EFR helps CE": [1.9]}, {"rho=100: UL - CE": 0.6, "rho=100: EFR helps CE": 0.6},
     v.REPRODUCED),
    ({"rho=100: UL - CE": [4.8], "rho=100: EFR helps CE": [0.5]}, {"rho=100: UL - CE": 0.6, "rho=100: EFR helps CE": 0.6},
     v.PARTIALLY_CHECKED),
    ({"rho=100: UL - CE": [-4.8]}, {"rho=100: UL - CE": 0.6}, v.NOT_REPRODUCED),
    ({"rho=100: UL - CE": [NAN]}, {"rho=100: UL - CE": 0.6}, v.NOT_REPRODUCED),
    ({"rho=100: UL - CE": [1.0, 2.0, 1.5]}, None, v.REPRODUCED),      # several seeds: their spread
])
def test_u_e2(gains, se, expected):
    assert rules.u_e2(gains=gains, standard_errors=se, at_scale=True).verdict == expected
    assert rules.u_e2(gains=gains, standard_errors=se, at_scale=False).verdict == v.NOT_CHECKED


def test_u_e3_and_u_e4():
    assert rules.u_e3(ece_drops={}, standard_errors=None, at_scale=True).verdict == v.NOT_CHECKED
    assert rules.u_e3(ece_drops={"exp rho=100": [2.9]}, standard_errors={"exp rho=100": 0.5},
                      at_scale=True).verdict == v.REPRODUCED
    assert rules.u_e3(ece_drops={"exp rho=100": [-2.9]}, standard_errors={"exp rho=100": 0.5},
                      at_scale=True).verdict == v.NOT_REPRODUCED
    drops = {"CE softmax": [14.7], "UL energy": [0.3]}
    se = {"CE softmax": 0.4, "UL energy": 0.4}
    assert rules.u_e4(fpr_drops=drops, standard_errors=se, at_scale=True).verdict == v.PARTIALLY_CHECKED
    assert rules.u_e4(fpr_drops=drops, standard_errors=se, at_scale=False).verdict == v.NOT_CHECKED


def test_an_exact_tie_is_never_a_gain():
    assert rules.u_e2(gains={"x": [0.0, 0.0]}, standard_errors=None, at_scale=True).verdict == v.UNDECIDED
    assert rules.u_i4_digits(settings={"BN": ([0.0, 0.0], [0.0, 0.0])}).verdict == v.UNDECIDED
