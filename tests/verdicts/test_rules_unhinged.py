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
    assert rules.accuracy_se(0.9, 100) == pytest.approx(0.03)
    assert math.isnan(rules.accuracy_se(NAN, 100)) and math.isnan(rules.accuracy_se(0.9, 0))
    assert rules.paired_se([1.0, 3.0]) == pytest.approx(1.0)
    assert math.isnan(rules.paired_se([1.0])) and math.isnan(rules.paired_se([]))
