"""The dynamical-loss rules (companion.verdicts.dynamical_loss), table-driven: NaN, empty,
diverged and borderline measurements, in milliseconds."""

import math

import pytest

from companion import verdicts as v
from companion.verdicts import dynamical_loss as rules

NAN = float("nan")


# -- DL-D1 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("checks, expected", [
    ({"sum": True, "positive": True}, v.REPRODUCED),
    ({"sum": True, "positive": False}, v.PARTIALLY),
    ({"sum": False, "positive": False}, v.NOT_REPRODUCED),
    ({"sum": True, "positive": None}, v.PARTIALLY_CHECKED),
    ({}, v.NOT_CHECKED),
])
def test_dl_d1_every_property(checks, expected):
    verdict = rules.dl_d1(checks)
    assert verdict.verdict == expected
    assert verdict.passed == v.passed_of(expected)


# -- DL-C4, DL-C5, DL-C6 --------------------------------------------------------------------------


@pytest.mark.parametrize("toy, gaps, cascade, above, smooth, expected", [
    (True, [34, -45], True, 1.0, 0.0, v.REPRODUCED),
    (True, [34, -145], True, 1.0, 0.0, v.PARTIALLY),       # one onset far from its crossing
    (True, [], True, 1.0, 0.0, v.PARTIALLY),               # no crossing at all fails that part
    (True, [34], False, 1.0, 0.0, v.PARTIALLY),
    (True, [34], True, NAN, 0.0, v.PARTIALLY),             # the control's measurement missing
    (False, [500], False, 0.1, 0.9, v.NOT_REPRODUCED),
    (None, [34], True, 1.0, 0.0, v.PARTIALLY_CHECKED),
])
def test_dl_c4(toy, gaps, cascade, above, smooth, expected):
    assert rules.dl_c4(toy, gaps, cascade, above, smooth, gap_margin=10, share_margin=0.05).verdict == expected


def test_dl_c4_onset_near_the_tolerance_is_undecided():
    assert rules.dl_c4(True, [105], True, 1.0, 0.0, gap_margin=10).verdict == v.PARTIALLY_CHECKED


@pytest.mark.parametrize("widen, deepen, narrow, rise, across, expected", [
    ([0.3, 0.4], [0.9, 0.8], 1.5, [1.2, 1.3], None, v.PARTIALLY_CHECKED),   # the across part needs 13 periods
    ([0.3, 0.4], [0.9, 0.8], 1.5, [1.2, 1.3], 0.7, v.REPRODUCED),
    ([0.3, 0.4], [0.9, 0.8], 1.5, [1.2, 1.3], 1.4, v.PARTIALLY),
    ([0.3, 0.9], [0.9, 0.8], 1.5, [1.2, 1.3], None, v.PARTIALLY),
    ([0.3, 0.58], [0.9, 0.8], 1.5, [1.2, 1.3], 0.7, v.PARTIALLY_CHECKED),   # 0.58 within 0.05 of 0.6
    ([], [], 1.5, [], None, v.PARTIALLY_CHECKED),
    ([NAN], [NAN], NAN, [NAN], NAN, v.NOT_REPRODUCED),
    ([0.9, 0.9], [1.1, 1.2], 0.5, [0.8, 0.9], 1.5, v.NOT_REPRODUCED),
])
def test_dl_c5(widen, deepen, narrow, rise, across, expected):
    assert rules.dl_c5(widen, deepen, narrow, rise, across, margin=0.05, curvature_margin=0.1).verdict == expected


@pytest.mark.parametrize("rise, drop, growth, expected", [
    ([1.5, 2.0], [0.5], 5.7, v.REPRODUCED),
    ([1.5, 0.5], [0.5], 5.7, v.PARTIALLY),
    ([1.5], [], 5.7, v.PARTIALLY_CHECKED),          # no switch followed by a measurement
    ([1.5], [0.5], 3.05, v.PARTIALLY_CHECKED),      # growth inside the dead zone
    ([0.5], [1.5], 1.0, v.NOT_REPRODUCED),
    ([NAN], [0.5], NAN, v.PARTIALLY),
])
def test_dl_c6(rise, drop, growth, expected):
    assert rules.dl_c6(rise, drop, growth, margin=0.05).verdict == expected


# -- DL-C3, DL-C9 ---------------------------------------------------------------------------------

FIT = {"CE": [0.995] * 4, "DL": [0.995] * 4}
NOFIT = {"CE": [0.98] * 4, "DL": [0.98] * 4}
CE = [0.970, 0.972, 0.968, 0.971]


@pytest.mark.parametrize("test, train, expected", [
    ({"constant": {"CE": CE, "DL": [0.980, 0.982, 0.979, 0.981]}, "cosine": {"CE": CE, "DL": [0.981, 0.98, 0.982, 0.979]}},
     {"constant": FIT, "cosine": FIT}, v.REPRODUCED),
    ({"constant": {"CE": CE, "DL": [0.980, 0.982, 0.979, 0.981]}, "cosine": {"CE": CE, "DL": [0.960, 0.961, 0.959, 0.962]}},
     {"constant": FIT, "cosine": FIT}, v.PARTIALLY),
    ({"constant": {"CE": CE, "DL": [0.980, 0.982, 0.979, 0.981]}, "cosine": {"CE": CE, "DL": CE}},
     {"constant": FIT, "cosine": FIT}, v.PARTIALLY_CHECKED),    # cosine: no difference, undecided
    ({"constant": {"CE": CE, "DL": [0.960, 0.961, 0.959, 0.962]}}, {"constant": FIT}, v.NOT_REPRODUCED),
    ({"constant": {"CE": CE, "DL": [0.980, 0.982, 0.979, 0.981]}}, {"constant": NOFIT}, v.NOT_CHECKED),
    ({"constant": {"CE": CE, "DL": [NAN, 0.98, 0.98, 0.98]}}, {"constant": FIT}, v.NOT_REPRODUCED),  # diverged
    ({"constant": {"CE": CE[:1], "DL": [0.99]}}, {"constant": FIT}, v.NOT_REPRODUCED),  # one seed: no SE
])
def test_dl_c3(test, train, expected):
    assert rules.dl_c3(test, train).verdict == expected


def _flat(lam_ce, lam_dl, acc_ce, acc_dl):
    return {"constant": {"lambda_max": {"CE": lam_ce, "DL": lam_dl}, "test_acc": {"CE": acc_ce, "DL": acc_dl}}}


@pytest.mark.parametrize("flat, expected", [
    (_flat([10, 11, 12], [5, 6, 5.5], CE[:3], CE[:3]), v.REPRODUCED),
    (_flat([10, 11, 12], [20, 21, 22], CE[:3], CE[:3]), v.PARTIALLY),
    (_flat([10, 11, 12], [10, 12, 11], CE[:3], CE[:3]), v.PARTIALLY_CHECKED),   # flatter: undecided
    (_flat([10, 11, 12], [20, 21, 22], CE[:3], [0.90, 0.91, 0.90]), v.NOT_REPRODUCED),
    (_flat([10], [5], CE[:1], CE[:1]), v.NOT_CHECKED),                          # < 2 fitted runs
    ({}, v.NOT_CHECKED),
])
def test_dl_c9(flat, expected):
    assert rules.dl_c9(flat).verdict == expected


# -- DL-C1, DL-C2, DL-C7, DL-C8, DL-C10 -----------------------------------------------------------

W50 = {"dl_final": [0.963, 0.957], "ce_final": [0.50, 0.49], "ce_last_period": [0.476, 0.50],
       "ce_loss": [1.04, 1.03], "dl_loss": [0.13, 0.16]}


@pytest.mark.parametrize("per_width, whole, expected", [
    ({50: W50}, False, v.PARTIALLY_CHECKED),              # every measured part holds, the range not run
    ({50: W50, 100: {**W50, "dl_final": [0.99, 0.99]}, 200: {**W50, "dl_final": [0.96, 0.97], "ce_final": [0.99, 0.99]}},
     True, v.PARTIALLY_CHECKED),         # w200: 0.965 is within the dead zone of 0.95 (0.028 for 2 seeds)
    ({50: W50, 100: {**W50, "dl_final": [0.99, 0.99, 0.99, 0.99]}, 200: {**W50, "dl_final": [0.99] * 4,
                                                                          "ce_final": [0.99] * 4}},
     True, v.REPRODUCED),
    ({50: {**W50, "dl_final": [0.50, 0.52]}}, False, v.PARTIALLY),        # DL fails at 50
    ({50: {**W50, "dl_final": [0.86]}}, False, v.PARTIALLY_CHECKED),      # one seed: within the perturbed spread
    ({50: {**W50, "dl_final": [0.5, 0.5], "ce_last_period": [0.9, 0.95], "ce_loss": [0.1, 0.1], "dl_loss": [1.0, 1.1]}},
     True, v.NOT_REPRODUCED),
    ({50: {**W50, "dl_final": [NAN, 0.96]}}, False, v.PARTIALLY),         # a diverged network
    ({20: W50}, False, v.NOT_CHECKED),
    (None, False, v.NOT_CHECKED),                                          # the paper's init not run
])
def test_dl_c1(per_width, whole, expected):
    assert rules.dl_c1(per_width, whole_range=whole).verdict == expected


def test_dl_c1_needs_dl_to_train_at_a_smaller_width_where_ce_trains():
    per_width = {50: {**W50, "dl_final": [0.5, 0.5]}, 100: {**W50, "dl_final": [0.95, 0.95], "ce_final": [0.95, 0.95]}}
    verdict = rules.dl_c1(per_width, whole_range=True)
    assert verdict.verdict == v.PARTIALLY and "DL trains at a smaller width: not reproduced" in verdict.note


@pytest.mark.parametrize("cases, clean, expected", [
    ([{"ce_share_above": 1.0, "dl_final": 0.96}], None, v.NOT_CHECKED),   # no clean case at this scale
    ([{"ce_share_above": 1.0, "dl_final": 0.99}], True, v.REPRODUCED),
    ([{"ce_share_above": 1.0, "dl_final": 0.87}], True, v.PARTIALLY_CHECKED),   # 0.87 within one run's spread
    ([{"ce_share_above": 1.0, "dl_final": 0.96}], False, v.PARTIALLY),
    ([{"ce_share_above": 0.2, "dl_final": 0.40}], False, v.NOT_REPRODUCED),
    ([], True, v.PARTIALLY_CHECKED),
    ([{"ce_share_above": NAN, "dl_final": 0.96}], True, v.PARTIALLY),
])
def test_dl_c2(cases, clean, expected):
    assert rules.dl_c2(cases, clean, share_margin=0.05).verdict == expected


def test_dl_c2_says_what_the_stand_in_measured():
    note = rules.dl_c2([{"ce_share_above": 1.0, "dl_final": 0.96}], None).note
    assert "clean case" in note and "reproduced" in note


@pytest.mark.parametrize("drops, expected", [
    ([0.0, 0.03], v.REPRODUCED), ([0.5], v.NOT_REPRODUCED), ([0.0, 0.12], v.UNDECIDED), ([], v.NOT_CHECKED),
    ([NAN], v.NOT_REPRODUCED), ([0.02], v.REPRODUCED),
])
def test_dl_c7(drops, expected):
    assert rules.dl_c7(drops).verdict == expected


def _sweep(dl_main, ce_main, dl_low, ce_low, crossing):
    return {"50 (nt_standard)": {1.0: {"dl": dl_main, "ce": ce_main},
                                 0.1: {"dl": dl_low, "ce": ce_low, "dl_crossing": crossing}}}


@pytest.mark.parametrize("sweeps, expected", [
    (_sweep([0.96, 0.95], [0.50, 0.49], [0.48], [0.58], [0.2]), v.REPRODUCED),
    (_sweep([0.96, 0.95], [0.50, 0.49], [0.48], [0.58], [1.5]), v.PARTIALLY),      # DL crossed at the small lr
    (_sweep([0.64, 0.66], [0.50, 0.49], [0.48], [0.50], [0.2]), v.PARTIALLY_CHECKED),  # growth 0.175 +- 0.061
    (_sweep([0.50, 0.49], [0.96, 0.95], [0.9], [0.5], [1.5]), v.NOT_REPRODUCED),
    (_sweep([NAN, 0.95], [0.50, 0.49], [0.48], [0.58], [0.2]), v.PARTIALLY),
    ({"50": {1.0: {"dl": [0.9], "ce": [0.5]}}}, v.NOT_CHECKED),                    # only the main lr
    ({}, v.NOT_CHECKED),
])
def test_dl_c8(sweeps, expected):
    assert rules.dl_c8(sweeps, 1.0, ratio_margin=0.1).verdict == expected


@pytest.mark.parametrize("focus, lasting, expected", [
    ([(6, 6), (6, 6), (5, 6), (6, 6)], [(6, 6), (5, 6), (6, 6), (6, 6)], v.REPRODUCED),
    ([(6, 6), (6, 6), (5, 6), (6, 6)], [(4, 6), (3, 6), (4, 6), (3, 6)], v.PARTIALLY_CHECKED),  # lasting 0.58: undecided
    ([(6, 6), (6, 6), (6, 6), (6, 6)], [(0, 6), (0, 6), (1, 6), (0, 6)], v.PARTIALLY),
    ([(12, 12)], [(5, 12)], v.PARTIALLY),        # one network: the binomial dead zone only
    ([], [], v.NOT_CHECKED),
    ([(0, 0)], [(0, 0)], v.NOT_CHECKED),
])
def test_dl_c10(focus, lasting, expected):
    assert rules.dl_c10(focus, lasting).verdict == expected
