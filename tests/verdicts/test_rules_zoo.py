"""The zoo rules (companion.verdicts.zoo), table-driven: NaN, empty, diverged and borderline
measurements, in milliseconds."""

import pytest

from companion import verdicts as v
from companion.verdicts import zoo as rules

NAN = float("nan")
SMALL = [1e-9, 2e-9, 3e-9]


# -- Z-1 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reach, unhinged, expected", [
    ({"ce": SMALL, "dynamical": [5e-4, 5e-4]}, [0.6, 0.7], v.REPRODUCED),
    ({"ce": SMALL, "dynamical": [5e-4, 5e-4, 5e-3]}, [0.6, 0.7], v.PARTIALLY),   # one seed misses NC
    ({"ce": SMALL, "dynamical": [5e-4, 2e-3]}, [0.6, 0.7], v.PARTIALLY_CHECKED),  # 2 seeds: inside 2 SE
    ({"ce": [2e-3, 3e-3]}, [0.01, 0.02], v.NOT_REPRODUCED),
    ({"ce": SMALL, "mse": [NAN, 1e-9]}, [0.6], v.PARTIALLY),               # a diverged run fails its part
    ({"ce": [9.9e-4, 1.01e-3, 9.8e-4]}, [0.6], v.PARTIALLY_CHECKED),        # inside 2 SE of the seeds
    ({"ce": SMALL}, [], v.PARTIALLY_CHECKED),                               # unhinged not run
    ({}, [], v.NOT_CHECKED),
])
def test_z_1(reach, unhinged, expected):
    assert rules.z_1(reach, unhinged).verdict == expected


# -- Z-2 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rooted, closed, expected", [
    ({"rooted": 1e-9, "rooted_gce": 3e-9}, {"ce": 1e-9, "focal": 6e-6}, v.REPRODUCED),
    ({"rooted": 1e-9, "rooted_gce": 2e-5}, {"ce": 1e-9}, v.PARTIALLY),
    ({"rooted": NAN}, {"ce": 1e-9}, v.PARTIALLY),
    ({"rooted": 1e-3}, {"ce": 1e-3}, v.NOT_REPRODUCED),
    ({}, {"ce": 1e-9}, v.PARTIALLY_CHECKED),
    ({"rooted": 1e-5}, {"ce": 1e-5}, v.REPRODUCED),   # margin 0: the threshold itself passes
])
def test_z_2(rooted, closed, expected):
    assert rules.z_2(rooted, closed).verdict == expected


# -- Z-3 ------------------------------------------------------------------------------------------

GOOD = dict(nc1=[1e-30], e1_gap=1e-15, nc2_w=[0.6], limit_error=1e-13)


@pytest.mark.parametrize("below, at, above, extra, expected", [
    ([6e60], [0.7], [1e-84], {}, v.REPRODUCED),
    ([6e60], [20.0], [1e-84], {}, v.PARTIALLY),          # not finite at lambda*
    ([6e60], [0.7], [1e-84], {"nc1": [NAN]}, v.PARTIALLY),
    ([6e60], [0.7], [1e-84], {"e1_gap": 1e-3}, v.PARTIALLY),
    ([NAN], [NAN], [NAN], {"nc1": [1.0], "e1_gap": 1.0, "nc2_w": [0.0], "limit_error": 1.0}, v.NOT_REPRODUCED),
    ([], [0.7], [1e-84], {}, v.PARTIALLY_CHECKED),
])
def test_z_3(below, at, above, extra, expected):
    assert rules.z_3(below, at, above, **{**GOOD, **extra}).verdict == expected


# -- Z-4 ------------------------------------------------------------------------------------------

RUN = dict(last_period_plain=True, nc1_oscillating=[9e-13, 8e-13], nc2_w_oscillating=[0.65, 0.65],
           final_nc=[5e-4, 5e-4], objective_error=[6e-8, 6e-8])


@pytest.mark.parametrize("ours, official, expected", [
    (RUN, RUN, v.REPRODUCED),
    (RUN, {**RUN, "final_nc": [2e-3, 2e-3]}, v.PARTIALLY),             # the rules differ
    (RUN, {**RUN, "last_period_plain": False}, v.PARTIALLY_CHECKED),    # official: no plain period
    (RUN, None, v.PARTIALLY_CHECKED),
    ({**RUN, "nc2_w_oscillating": [0.01, 0.02]}, {**RUN, "nc2_w_oscillating": [0.01, 0.02]}, v.PARTIALLY),
    ({**RUN, "objective_error": [NAN, 1e-8]}, RUN, v.PARTIALLY),
    ({**RUN, "nc1_oscillating": [1.0], "nc2_w_oscillating": [0.0], "final_nc": [1.0], "objective_error": [1.0]},
     None, v.NOT_REPRODUCED),
    (None, None, v.NOT_CHECKED),
])
def test_z_4(ours, official, expected):
    assert rules.z_4(ours, official).verdict == expected


# -- Z-5 ... Z-8 ----------------------------------------------------------------------------------

CE = [0.976, 0.954]


@pytest.mark.parametrize("accuracy, diverged, expected", [
    ({"ce": [0.960, 0.962, 0.961], "ls": [0.965, 0.966, 0.964]}, {"ce": 0, "ls": 0}, v.REPRODUCED),
    ({"ce": CE, "ls": [0.979, 0.962]}, {"ce": 0, "ls": 0}, v.PARTIALLY_CHECKED),   # 2 seeds: margin > tolerance
    ({"ce": [0.960, 0.962, 0.961], "mse": [0.90, 0.91, 0.905]}, {"ce": 0, "mse": 0}, v.PARTIALLY),
    ({"ce": [0.960, 0.962, 0.961], "mse": [NAN, 0.91, 0.905]}, {"ce": 0, "mse": 1}, v.NOT_REPRODUCED),
    ({"ce": [0.96], "ls": [0.97]}, None, v.REPRODUCED),            # one seed: no dead zone, said in the note
    ({"ls": [0.97]}, None, v.NOT_CHECKED),
])
def test_z_5(accuracy, diverged, expected):
    assert rules.z_5(accuracy, diverged=diverged).verdict == expected


def test_z_5_one_seed_says_so():
    assert "no seed spread" in rules.z_5({"ce": [0.96], "ls": [0.97]}).note


@pytest.mark.parametrize("unhinged, expected", [
    ([0.19, 0.17], v.REPRODUCED), ([NAN, NAN], v.REPRODUCED), ([NAN, 0.2], v.REPRODUCED),
    ([0.90, 0.91], v.NOT_REPRODUCED), ([0.86, 0.20], v.UNDECIDED), ([], v.NOT_CHECKED),
])
def test_z_6(unhinged, expected):
    assert rules.z_6(unhinged, CE).verdict == expected


@pytest.mark.parametrize("pal, expected", [
    ([0.47, 0.43], v.NOT_REPRODUCED), ([0.964, 0.966], v.REPRODUCED), ([0.95, 0.93], v.UNDECIDED),
    ([NAN, 0.96], v.NOT_REPRODUCED), ([], v.NOT_CHECKED),
])
def test_z_6b(pal, expected):
    assert rules.z_6b(pal, [0.965, 0.966]).verdict == expected


NC1 = {"ce": [0.24, 0.26], "mse": [0.044, 0.045], "rooted_gce": [0.41, 0.39]}


@pytest.mark.parametrize("nc1, reached, expected", [
    (NC1, {"ce": 0, "mse": 1, "rooted_gce": 0}, v.NOT_CHECKED),        # not the terminal phase
    (NC1, {"ce": 2, "mse": 2, "rooted_gce": 2}, v.NOT_REPRODUCED),     # 9x
    ({"ce": [0.24, 0.26], "mse": [0.2, 0.21]}, {"ce": 2, "mse": 2}, v.REPRODUCED),
    ({"ce": [0.24, 0.26], "mse": [0.08, 0.09]}, {"ce": 2, "mse": 2}, v.UNDECIDED),   # ~3x within the dead zone
    ({"ce": [0.24, NAN], "mse": [0.2, 0.21]}, {"ce": 2, "mse": 2}, v.NOT_REPRODUCED),
    ({}, {}, v.NOT_CHECKED),
])
def test_z_7(nc1, reached, expected):
    assert rules.z_7(nc1, reached, 2).verdict == expected


def test_z_7_says_what_the_stand_in_measured():
    note = rules.z_7(NC1, {"ce": 0, "mse": 1, "rooted_gce": 0}, 2).note
    assert "terminal phase" in note and "ce 0/2" in note and "not reproduced" in note


@pytest.mark.parametrize("ece, accuracy, expected", [
    ({"ce": [0.009, 0.020], "ls": [0.12, 0.13]}, v.Verdict(v.REPRODUCED, ""), v.REPRODUCED),
    ({"ce": [0.009, 0.020], "ls": [0.12, 0.13]}, v.Verdict(v.PARTIALLY_CHECKED, ""), v.PARTIALLY_CHECKED),
    ({"ce": [0.02, 0.021], "ls": [0.022, 0.023]}, v.Verdict(v.REPRODUCED, ""), v.PARTIALLY),
    ({"ce": [0.02, NAN], "ls": [0.12, 0.13]}, v.Verdict(v.NOT_REPRODUCED, ""), v.NOT_REPRODUCED),
])
def test_z_8(ece, accuracy, expected):
    assert rules.z_8(ece, accuracy).verdict == expected
