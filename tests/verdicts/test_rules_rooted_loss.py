"""The rooted-loss verdict rules, table-driven: borderline, NaN, empty and diverged inputs."""

import math

import pytest

from companion import verdicts as v
from companion.verdicts import rooted_loss as rules

NAN = float("nan")
INF = math.inf


# -- 01 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bound, monotone, gaps, expected", [
    (True, True, [143.0, 7.9, 0.0126], v.REPRODUCED),
    (False, True, [143.0, 0.0126], v.PARTIALLY),           # one part fails beside others that hold
    (True, True, [0.1, 0.2], v.PARTIALLY),                 # gap grows with k
    (False, False, [0.1, 0.2], v.NOT_REPRODUCED),
    (True, True, [], v.PARTIALLY_CHECKED),                 # no gaps measured: that part not checked
    (True, True, [NAN, 0.1], v.PARTIALLY_CHECKED),
])
def test_r_d1(bound, monotone, gaps, expected):
    assert rules.r_d1(bound, monotone, gaps).verdict == expected


@pytest.mark.parametrize("error, expected", [
    (1e-16, v.REPRODUCED), (1e-14, v.REPRODUCED), (2e-14, v.NOT_REPRODUCED), (NAN, v.NOT_REPRODUCED),
])
def test_r_d2(error, expected):
    assert rules.r_d2(error).verdict == expected


@pytest.mark.parametrize("curvatures, autograd, expected", [
    ({0.25: 4.5e-5, 3.0: 4.5e-5}, 4e-13, v.REPRODUCED),
    ({0.25: 0.0, 3.0: 4.5e-5}, 4e-13, v.PARTIALLY),
    ({0.25: NAN}, 4e-13, v.PARTIALLY),
    ({0.25: 4.5e-5}, 1e-6, v.PARTIALLY),                   # closed form disagrees with autograd
    ({}, 4e-13, v.PARTIALLY_CHECKED),
])
def test_r_d3(curvatures, autograd, expected):
    verdict = rules.r_d3(curvatures, autograd)
    assert verdict.verdict == expected
    if curvatures:
        assert "k > 1 is sufficient" in verdict.note


@pytest.mark.parametrize("at_least_one, decreasing, expected", [
    (True, True, v.REPRODUCED), (True, False, v.PARTIALLY), (False, False, v.NOT_REPRODUCED),
])
def test_r_d4(at_least_one, decreasing, expected):
    assert rules.r_d4(at_least_one, decreasing).verdict == expected


@pytest.mark.parametrize("convex, code, error, expected", [
    ([4.64, 2.15, 1.26, 1.04], [0.215, 0.464, 0.794, 0.965], 1e-16, v.REPRODUCED),
    ([4.64, 2.15, 1.26, 1.04], [0.215, 0.464, 0.794, 1.01], 1e-16, v.PARTIALLY),   # code weight above 1
    ([1.04, 1.26], [0.215, 0.464], 1e-16, v.PARTIALLY),                            # convex weight rising
    ([4.64, 2.15], [0.215, 0.464], 1e-3, v.PARTIALLY),                             # autograd disagrees
    ([], [], 0.0, v.NOT_REPRODUCED),
    ([NAN, 1.0], [0.2, 0.5], 0.0, v.NOT_REPRODUCED),
])
def test_r_d5(convex, code, error, expected):
    assert rules.r_d5(convex, code, error).verdict == expected


# -- 02 ------------------------------------------------------------------------------------------

T3 = dict(worst_difference=3e-6, ratio_at_least_one=True, ratio_decreasing=True, min_relative_eig_full_rank=3e-6,
          max_relative_eig_deficient=1e-17, growth_rooted_min=1.5e3, growth_logistic=0.01, smallest_k=0.5,
          hessian_autograd_error=1e-15)


@pytest.mark.parametrize("change, expected", [
    ({}, v.REPRODUCED),
    ({"worst_difference": -1e-6}, v.PARTIALLY),              # domination fails
    ({"min_relative_eig_full_rank": 1e-9}, v.PARTIALLY),     # not strictly convex
    ({"max_relative_eig_deficient": 1e-3}, v.PARTIALLY),
    ({"growth_rooted_min": 10.0}, v.PARTIALLY),              # bounded curvature
    ({"growth_rooted_min": NAN}, v.PARTIALLY_CHECKED),       # overflowed before the first point
    ({"hessian_autograd_error": 1e-3}, v.PARTIALLY),
    ({"worst_difference": NAN}, v.PARTIALLY),                # NaN eigenvalues: a failure
])
def test_r_t3(change, expected):
    assert rules.r_t3(**(T3 | change)).verdict == expected


@pytest.mark.parametrize("ratios, random_w, expected", [
    ([0.5, 0.6, 0.7], {"k=1": (180, 200), "k=3": (190, 200)}, v.REPRODUCED),
    ([0.5, 0.6, 1.5], {"k=1": (180, 200)}, v.REPRODUCED),            # 2 of 3 is a strict majority
    ([0.5, 1.5, 1.0], {"k=1": (180, 200)}, v.PARTIALLY),             # 1 win, 1 loss, 1 tie at the minimizers
    ([0.6] * 12 + [1.4] * 11 + [1.0], {"k=1": (24, 200)}, v.PARTIALLY),   # the ci case
    ([1.5, 1.4], {"k=1": (24, 200), "k=3": (49, 200)}, v.NOT_REPRODUCED),
    ([0.9995, 1.0005], {"k=1": (100, 200)}, v.UNDECIDED),            # ties everywhere: nothing decided
    ([NAN, 0.5], {"k=1": (190, 200)}, v.REPRODUCED),                 # a data set without minimizer is skipped
    ([], {}, v.NOT_CHECKED),
])
def test_r_t8(ratios, random_w, expected):
    assert rules.r_t8(ratios, random_w).verdict == expected


def test_r_t8_share_has_a_binomial_dead_zone():
    # 110 of 200 is 0.55, inside 0.5 +- 2 * sqrt(0.25 / 200) = 0.071: a tie, not a win
    verdict = rules.r_t8([0.5], {"k=1": (110, 200)})
    assert "0 wins, 0 losses, 1 ties" in verdict.note


# -- 03 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("shrinks, final, generator, growth, gap, expected", [
    (True, 3.4, 4.1, 3.5, 0.009, v.REPRODUCED),
    (True, 4.2, 4.1, 3.5, 0.009, v.PARTIALLY),        # ends farther than the generator
    (True, 3.4, 4.1, 1.2, 0.009, v.PARTIALLY),        # norm stopped growing
    (True, 3.4, 4.1, 3.5, 0.3, v.PARTIALLY),          # not the logistic rate
    (False, NAN, 4.1, NAN, NAN, v.NOT_REPRODUCED),    # a diverged run
])
def test_r_t4(shrinks, final, generator, growth, gap, expected):
    assert rules.r_t4(shrinks, final, generator, growth, gap).verdict == expected


@pytest.mark.parametrize("spread, eig, increasing, tends, exponent, expected", [
    (5e-10, 0.1, True, True, -0.992, v.REPRODUCED),
    (1e-3, 0.1, True, True, -0.992, v.PARTIALLY),     # restarts disagree
    (5e-10, -0.1, True, True, -0.992, v.PARTIALLY),   # not a minimum
    (5e-10, 0.1, True, True, -0.8, v.PARTIALLY),      # rate off
    (NAN, 0.1, True, True, NAN, v.PARTIALLY),         # a failed minimization
    (NAN, NAN, False, False, NAN, v.NOT_REPRODUCED),
])
def test_r_t5(spread, eig, increasing, tends, exponent, expected):
    assert rules.r_t5(spread, eig, increasing, tends, exponent).verdict == expected


# -- 04 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ratios, threshold, expected", [
    ([2.5, 2.5, 2.6, 2.5, 2.4], 1.0, v.REPRODUCED),
    ([1.1, 1.1, 1.1], 1.0, v.REPRODUCED),              # no spread: any gain decides
    ([1.0, 1.0, 1.0], 1.0, v.UNDECIDED),               # exact tie
    ([0.5, 2.0, 1.0], 1.0, v.UNDECIDED),               # spread wider than the mean
    ([0.4, 0.4, 0.35], 1.0, v.NOT_REPRODUCED),
    ([1.27, 1.2, 1.35], 1.25, v.UNDECIDED),            # inside the dead zone of the material threshold
    ([INF, 2.0, 2.0], 1.0, v.REPRODUCED),              # logistic never got there in one seed
    ([0.0, 0.5, 0.6], 1.0, v.NOT_REPRODUCED),          # the rooted run never got there in one seed
    ([INF, 0.0], 1.0, v.UNDECIDED),                    # one each way
    ([NAN, NAN], 1.0, v.NOT_CHECKED),                  # neither ever reached the target
    ([], 1.0, v.NOT_CHECKED),
])
def test_speedup_verdict(ratios, threshold, expected):
    assert rules.speedup_verdict(ratios, threshold).verdict == expected


def test_r_e1_combines_comparisons_and_handles_no_safe_step():
    faster = [2.0, 2.1, 2.0]
    assert rules.r_e1({"sep k=1 c=0.5": faster, "non-sep k=1 c=0.5": faster}).verdict == v.REPRODUCED
    assert rules.r_e1({"a": faster, "b": [0.5, 0.5, 0.5]}).verdict == v.PARTIALLY
    assert rules.r_e1({"a": faster, "b": [1.0, 1.0]}).verdict == v.PARTIALLY_CHECKED
    assert rules.r_e1({"a": [0.5, 0.6], "b": [0.5, 0.5]}).verdict == v.NOT_REPRODUCED
    empty = rules.r_e1({})
    assert empty.verdict == v.NOT_CHECKED and "no comparison" in empty.note


def test_r_e1b_needs_material_speedups_and_a_bracketing_grid():
    assert rules.r_e1b({"a": [1.5, 1.6, 1.55]}).verdict == v.REPRODUCED
    assert rules.r_e1b({"a": [1.1, 1.1, 1.1]}).verdict == v.NOT_REPRODUCED  # faster, not materially
    edge = rules.r_e1b({"a": [1.5, 1.6], "b": [3.0, 3.0]}, edge=["b"])
    assert edge.verdict == v.PARTIALLY_CHECKED and "1 not checked (b: best step" in edge.note
    assert rules.r_e1b({"b": [3.0, 3.0]}, edge=["b"]).verdict == v.NOT_CHECKED
    ci = rules.r_e1b({"sep k=1": [0.39, 0.4, 0.38], "non-sep k=3": [1.2, 1.35, 1.27]})
    assert ci.verdict == v.NOT_REPRODUCED and "Not faster" not in ci.note


def test_r_t7_reports_full_batch_and_judges_mini_batches():
    verdict = rules.r_t7({"batch 8": [0.5, 0.52, 0.55], "batch 32": [0.33, 0.34, 0.35]}, full_batch=[0.39, 0.4])
    assert verdict.verdict == v.NOT_REPRODUCED and "Full-batch GD" in verdict.note
    assert rules.r_t7({"batch 8": [1.6, 1.7, 1.65]}).verdict == v.REPRODUCED
    assert rules.r_t7({}).verdict == v.NOT_CHECKED
