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


# -- 05 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pairs, expected", [
    ({"a": (0.0, 0.001), "b": (0.002, 0.002)}, v.REPRODUCED),
    ({"a": (0.0, 0.0)}, v.REPRODUCED),                          # identical predictions in every split
    ({"a": (0.0, 0.001), "b": (-0.05, 0.005)}, v.PARTIALLY),    # one clearly inferior
    ({"a": (-0.05, 0.005)}, v.NOT_REPRODUCED),
    ({"a": (0.0, 0.001), "iris": (0.0, 0.0125)}, v.PARTIALLY_CHECKED),   # 2 SE > margin: not checkable
    ({"a": (0.0, 0.001), "b": (-0.005, 0.0036)}, v.PARTIALLY_CHECKED),   # interval straddles -1 point
    ({"a": (-1 / 300, 1 / 300)}, v.UNDECIDED),                  # lower bound exactly on the margin
    ({"a": (NAN, 0.001)}, v.NOT_REPRODUCED),                    # nothing measured
    ({}, v.NOT_CHECKED),
])
def test_r_e2(pairs, expected):
    verdict = rules.r_e2(pairs, data_sets=4, splits=20)
    assert verdict.verdict == expected
    if pairs:
        assert "stand-ins" in verdict.note


def test_r_e2_names_the_unpowered_comparisons_and_counts_gains():
    verdict = rules.r_e2({"iris": (0.0, 0.0125), "gain": (0.03, 0.005)}, 4, 5)
    assert "1 not checkable at this size (2 SE >= 1 point: iris)" in verdict.note
    assert "1 significant gains and 0 losses" in verdict.note


@pytest.mark.parametrize("small, large, l2, sets, table1, expected", [
    (3, 3, 2, 4, False, v.NOT_CHECKED),      # a pattern on stand-ins is never judged
    (0, 1, 0, 4, False, v.NOT_CHECKED),
    (3, 3, 2, 4, True, v.REPRODUCED),        # on Table 1's own data it would be
    (0, 1, 0, 4, True, v.PARTIALLY),
    (0, 0, 0, 4, True, v.NOT_REPRODUCED),
    (0, 0, 0, 0, False, v.NOT_CHECKED),
])
def test_r_e2b(small, large, l2, sets, table1, expected):
    verdict = rules.r_e2b(small, large, l2, sets, on_table1_data=table1)
    assert verdict.verdict == expected
    if sets and not table1:
        assert "Not checkable on stand-ins" in verdict.note and "would say" in verdict.note


# -- 06 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reference, mine, floor, lower, expected", [
    ([9.5, 10.0], [8.0, 8.0], 0.5, True, rules.WIN),
    ([9.0, 10.0], [9.0, 11.0], 0.5, True, rules.TIE),       # -0.5 with a spread of 1: inside
    ([6.0, 6.0], [7.0, 7.0], 0.5, True, rules.LOSS),        # one epoch slower in both seeds
    ([9.0], [9.0], 0.5, True, rules.TIE),                   # an exact tie is a tie, not a loss
    ([INF, INF], [11.0, 12.0], 0.5, True, rules.WIN),       # CE never reached the target
    ([INF, INF], [INF, INF], 0.5, True, rules.TIE),         # neither did
    ([8.0, 9.0], [INF, INF], 0.5, True, rules.LOSS),
    ([8.0], [NAN], 0.5, True, rules.LOSS),                  # a diverged run is the worst value
    ([0.97, 0.971], [0.98, 0.982], 0.005, False, rules.WIN),
    ([0.97], [0.972], 0.005, False, rules.TIE),             # within half a point
    ([0.97, 0.97], [NAN, NAN], 0.005, False, rules.LOSS),
    ([NAN], [0.9], 0.005, False, rules.WIN),
    ([], [], 0.5, True, rules.TIE),
])
def test_paired_outcome(reference, mine, floor, lower, expected):
    assert rules.paired_outcome(reference, mine, floor, lower_is_better=lower)[0] == expected


FASTER = ([10.0, 11.0], [8.0, 8.0])
SLOWER = ([6.0, 6.0], [7.0, 7.0])
TIED = ([9.0, 9.0], [9.0, 9.0])


@pytest.mark.parametrize("official, edge, at_scale, expected", [
    ({"shared": FASTER, "tuned": FASTER}, (), True, v.REPRODUCED),
    ({"shared": FASTER, "tuned": TIED}, (), True, v.PARTIALLY),          # a tie is neither
    ({"shared": SLOWER, "tuned": SLOWER}, (), True, v.NOT_REPRODUCED),
    ({"shared": TIED}, (), True, v.UNDECIDED),
    ({"shared": FASTER, "tuned": SLOWER}, ("tuned",), True, v.REPRODUCED),  # edge comparison not judged
    ({}, (), True, v.NOT_CHECKED),
    ({"shared": FASTER, "tuned": FASTER}, (), False, v.NOT_CHECKED),     # the digits stand-in
])
def test_r_e3(official, edge, at_scale, expected):
    verdict = rules.r_e3(official, {"shared": SLOWER}, at_scale=at_scale, edge=edge, ce_never=1)
    assert verdict.verdict == expected
    assert "Convex form" in verdict.note
    if not at_scale:
        assert verdict.note.startswith(rules.STAND_IN) and "would say 'reproduced'" in verdict.note


def test_r_e3b_and_r_e3c():
    gain = ([0.80, 0.81], [0.83, 0.84])
    same = ([0.80, 0.81], [0.80, 0.81])
    verdict = rules.r_e3b({"ce shared": gain, "ce tuned": gain, "focal shared": same}, at_scale=True,
                          best_accuracy=0.84)
    assert verdict.verdict == v.REPRODUCED and "87.67%" in verdict.note and "84%" in verdict.note
    assert rules.r_e3b({"ce": same}, at_scale=True).verdict == v.UNDECIDED
    assert rules.r_e3b({"ce": gain}, at_scale=False).verdict == v.NOT_CHECKED
    quick = ([100.0, 110.0], [80.0, 82.0])
    verdict = rules.r_e3c({"shared": quick}, at_scale=True, epoch_seconds=10.0, epoch_time_ratio=1.01)
    assert verdict.verdict == v.REPRODUCED and "1.01" in verdict.note
    # within half an epoch's time: a tie
    assert rules.r_e3c({"shared": ([100.0], [97.0])}, at_scale=True, epoch_seconds=10.0).verdict == v.UNDECIDED


# -- 07 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("logistic, rooted, initial, at_scale, expected", [
    ([20.0, 21.0], [19.0, 20.5], 100.0, True, v.REPRODUCED),       # non-inferior (slightly better)
    ([20.0, 21.0], [30.0, 32.0], 100.0, True, v.NOT_REPRODUCED),   # 50% worse in both seeds
    ([20.0, 21.0], [18.0, 26.0], 100.0, True, v.UNDECIDED),        # the seeds disagree: test too weak
    ([20.0, 21.0], [20.0, NAN], 100.0, True, v.NOT_REPRODUCED),    # a rooted run diverged
    ([60.0, 21.0], [20.0, 20.0], 100.0, True, v.NOT_CHECKED),      # a logistic run did not learn
    ([4.81], [4.69], 51.1, True, v.NOT_CHECKED),                   # one seed: no spread
    ([20.0, 21.0], [19.0, 20.5], 100.0, False, v.NOT_CHECKED),     # the digits stand-in
    ([], [], 100.0, True, v.NOT_CHECKED),
])
def test_r_e4(logistic, rooted, initial, at_scale, expected):
    verdict = rules.r_e4(logistic, rooted, initial, at_scale=at_scale, floor=0.31)
    assert verdict.verdict == expected
    if logistic and not at_scale:
        assert "would say 'reproduced'" in verdict.note


# -- 08 ------------------------------------------------------------------------------------------

def test_r_e5_is_never_checked_without_an_llm_and_keeps_the_counts():
    less = ([0.15, 0.16, 0.14], [0.10, 0.11, 0.09])
    more = ([0.01, 0.01, 0.01], [0.05, 0.06, 0.05])
    same = ([0.01, 0.02, 0.0], [0.012, 0.018, 0.001])
    verdict = rules.r_e5({"a": less, "b": more, "c": same}, eight_bit_drop=0.001)
    assert verdict.verdict == v.NOT_CHECKED
    assert "1 wins, 1 losses, 1 ties over 3" in verdict.note and "0.1 points" in verdict.note
    assert rules.r_e5({"a": less, "b": less}, llm_with_quip=True).verdict == v.REPRODUCED
    assert rules.r_e5({}).verdict == v.NOT_CHECKED
    # a diverged run's drop (NaN) is the worst value: the rooted form loses
    assert "0 wins, 1 losses" in rules.r_e5({"a": ([0.1], [NAN])}).note


def test_speedup_note_gives_the_geometric_mean_not_its_log_when_a_side_never_got_there():
    assert "(geometric mean 0 over 3 seeds.)" in rules.speedup_verdict([0.0, 0.0, 0.0]).note
    assert "(geometric mean inf over 3 seeds.)" in rules.speedup_verdict([math.inf] * 3).note
