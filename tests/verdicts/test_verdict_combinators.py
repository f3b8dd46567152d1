"""The shared verdict combinators, table-driven: NaN, empty, borderline and diverged inputs."""

import math

import pytest

from companion import verdicts as v

NAN = float("nan")


@pytest.mark.parametrize("value, threshold, margin, expected", [
    (0.9, 0.8, 0.05, v.REPRODUCED),
    (0.84, 0.8, 0.05, v.UNDECIDED),        # inside the dead zone
    (0.85, 0.8, 0.05, v.UNDECIDED),        # on its edge: still undecided
    (0.76, 0.8, 0.05, v.UNDECIDED),
    (0.7, 0.8, 0.05, v.NOT_REPRODUCED),
    (0.8, 0.8, 0.0, v.REPRODUCED),         # exact math: no dead zone, >= holds
    (NAN, 0.8, 0.05, v.NOT_REPRODUCED),    # a diverged run
    (None, 0.8, 0.05, v.NOT_REPRODUCED),
    (math.inf, 0.8, 0.05, v.REPRODUCED),
])
def test_at_least_has_a_dead_zone(value, threshold, margin, expected):
    assert v.at_least(value, threshold, margin).verdict == expected


@pytest.mark.parametrize("value, expected", [(0.1, v.REPRODUCED), (0.21, v.UNDECIDED), (0.4, v.NOT_REPRODUCED)])
def test_at_most_mirrors_at_least(value, expected):
    assert v.at_most(value, 0.2, 0.05).verdict == expected


def test_missing_values_can_be_declared_unchecked_and_margins_must_be_valid():
    assert v.at_least(NAN, 1.0, on_missing=v.NOT_CHECKED).verdict == v.NOT_CHECKED
    with pytest.raises(ValueError):
        v.at_least(1.0, 1.0, -0.1)
    with pytest.raises(ValueError):
        v.at_least(1.0, 1.0, NAN)


def test_undecided_says_so_with_the_numbers():
    note = v.at_least(0.69, 0.7, 0.05, what="lasting share").note
    assert note.startswith("undecided") and "0.69" in note and "0.7" in note and "0.05" in note


@pytest.mark.parametrize("successes, total, expected", [
    (10, 10, v.REPRODUCED), (9, 10, v.UNDECIDED), (7, 10, v.UNDECIDED), (5, 10, v.UNDECIDED), (2, 10, v.NOT_REPRODUCED),
    (70, 100, v.UNDECIDED), (85, 100, v.REPRODUCED), (0, 0, v.NOT_CHECKED),
])
def test_share_at_least_uses_a_binomial_dead_zone(successes, total, expected):
    assert v.share_at_least(successes, total, 0.7).verdict == expected


@pytest.mark.parametrize("difference, se, expected", [
    (0.0, 0.1, v.REPRODUCED),     # [-0.2, 0.2] above -1
    (0.0, 1.25, v.UNDECIDED),     # the iris case: 2 SE = 2.5 > margin 1, cannot pass even at 0
    (-3.0, 0.5, v.NOT_REPRODUCED),
    (-1.0, 0.1, v.UNDECIDED),
    (NAN, 0.1, v.NOT_REPRODUCED),
])
def test_non_inferiority_needs_the_test_to_have_power(difference, se, expected):
    verdict = v.non_inferior(difference, se, margin=1.0)
    assert verdict.verdict == expected
    if (difference, se) == (0.0, 1.25):
        assert "cannot pass at this size" in verdict.note


@pytest.mark.parametrize("parts, expected", [
    ([v.REPRODUCED, v.REPRODUCED], v.REPRODUCED),
    ([v.REPRODUCED, v.NOT_REPRODUCED], v.PARTIALLY),
    ([v.NOT_REPRODUCED, v.NOT_REPRODUCED], v.NOT_REPRODUCED),
    ([v.NOT_REPRODUCED, v.NOT_CHECKED], v.NOT_REPRODUCED),
    ([v.REPRODUCED, v.NOT_CHECKED], v.PARTIALLY_CHECKED),   # half not run is not half failed
    ([v.REPRODUCED, v.UNDECIDED], v.PARTIALLY_CHECKED),
    ([v.PARTIALLY_CHECKED, v.REPRODUCED], v.PARTIALLY_CHECKED),
    ([v.PARTIALLY, v.REPRODUCED], v.PARTIALLY),
    ([v.UNDECIDED, v.NOT_CHECKED], v.UNDECIDED),
    ([v.NOT_CHECKED], v.NOT_CHECKED),
    ([], v.NOT_CHECKED),
])
def test_combine(parts, expected):
    assert v.combine(parts) == expected


def test_all_of_accepts_booleans_and_lists_each_part():
    verdict = v.all_of({"bound holds": True, "monotone": v.at_least(0.5, 0.7, 0.1, what="share"),
                        "gpu only": None}, expected="all hold")
    assert verdict.verdict == v.PARTIALLY  # one part held, one failed, one not run
    assert "bound holds: reproduced" in verdict.note and "gpu only: not checked at this scale" in verdict.note
    assert v.all_of({}, expected="x").verdict == v.NOT_CHECKED


@pytest.mark.parametrize("wins, losses, ties, expected", [
    (5, 3, 0, v.REPRODUCED), (3, 3, 2, v.PARTIALLY), (1, 7, 0, v.NOT_REPRODUCED),
    (4, 3, 1, v.PARTIALLY),   # 4 of 8 is not a strict majority
    (0, 0, 4, v.UNDECIDED), (0, 0, 0, v.NOT_CHECKED),
])
def test_majority_counts_ties_as_neither(wins, losses, ties, expected):
    assert v.majority(wins, losses, ties).verdict == expected


def test_unless_at_scale_reports_what_the_stand_in_measured():
    stand_in = v.at_least(0.9, 0.8, what="accuracy")
    assert v.unless_at_scale(stand_in, True, "toy") is stand_in
    kept_out = v.unless_at_scale(stand_in, False, "A digits MLP does not decide a claim about ResNets.")
    assert kept_out.verdict == v.NOT_CHECKED
    assert "would say 'reproduced'" in kept_out.note and "digits MLP" in kept_out.note


@pytest.mark.parametrize("verdict, passed", [
    (v.REPRODUCED, True), (v.PARTIALLY, False), (v.NOT_REPRODUCED, False),
    (v.PARTIALLY_CHECKED, None), (v.UNDECIDED, None), (v.NOT_CHECKED, None),
])
def test_passed_is_derived_from_the_verdict(verdict, passed):
    assert v.Verdict(verdict, "x").passed is passed


def test_spread_margin_is_z_standard_errors_with_a_floor():
    assert v.spread_margin([1.0, 1.0, 1.0], floor=0.01) == 0.01
    assert v.spread_margin([0.0, 2.0]) == pytest.approx(2 * math.sqrt(2) / math.sqrt(2))
    assert v.spread_margin([1.0, NAN], floor=0.02) == 0.02
    assert v.spread_margin([]) == 0.0


def test_decide():
    assert v.decide(True, "x").verdict == v.REPRODUCED
    assert v.decide(False, "x").verdict == v.NOT_REPRODUCED
    assert v.decide(None, "x").verdict == v.NOT_CHECKED
    assert v.decide(None, "x", unchecked=v.UNDECIDED).verdict == v.UNDECIDED


def test_largest_and_smallest_fail_on_a_missing_value():
    assert v.largest([1.0, 3.0]) == 3.0 and v.smallest([1.0, 3.0]) == 1.0
    assert math.isnan(v.largest([1.0, NAN])) and math.isnan(v.smallest([None, 2.0]))
    assert math.isnan(v.largest([])) and math.isnan(v.smallest([]))
