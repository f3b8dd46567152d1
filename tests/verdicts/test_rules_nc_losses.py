"""The rules of companion.verdicts.nc_losses, table-driven: NaN, empty, diverged and borderline inputs."""

import math

import pytest

from companion import verdicts as v
from companion.verdicts import nc_losses as rules

NAN = float("nan")

# -- NC-D1 ------------------------------------------------------------------------------------

GOOD_CASES = {"(i)": (3.6e-3, 4e-16), "(ii)": (0.58, 1e-32), "(iii)": (1.49, 4e-16), "(iv)": (0.9, 4e-16)}


@pytest.mark.parametrize("exact_max, cases, expected", [
    (4e-16, GOOD_CASES, v.REPRODUCED),
    (1e-12, GOOD_CASES, v.REPRODUCED),                               # on the threshold: exact math, >= holds
    (2e-12, GOOD_CASES, v.PARTIALLY),                                # exact NC not reached, the cases hold
    (4e-16, {**GOOD_CASES, "(i)": (5e-7, 4e-16)}, v.PARTIALLY),      # nc1 does not move
    (4e-16, {**GOOD_CASES, "(iii)": (1.49, 1e-9)}, v.PARTIALLY),     # another metric moves too
    (4e-16, {**GOOD_CASES, "(ii)": (NAN, 1e-32)}, v.PARTIALLY),      # a NaN metric is a failure
    (NAN, {k: (NAN, NAN) for k in GOOD_CASES}, v.NOT_REPRODUCED),
    (4e-16, {}, v.PARTIALLY),                                        # no broken case: nothing detected
])
def test_nc_d1(exact_max, cases, expected):
    assert rules.nc_d1(exact_max, cases).verdict == expected


# -- NC-M1 ------------------------------------------------------------------------------------

M1 = dict(optimum_gap=1e-17, offset_centred=5e-16, offset_uncentred=1.39, mse_wmu_b=4.63, mse_closed_form=4.63,
          mse_ncc_mismatch=0.0, finite=True)


@pytest.mark.parametrize("change, expected", [
    ({}, v.REPRODUCED),
    ({"offset_uncentred": 0.05}, v.PARTIALLY),          # the centring would not matter
    ({"mse_ncc_mismatch": 0.1}, v.PARTIALLY),
    ({"mse_wmu_b": 4.7}, v.PARTIALLY),                  # not the closed form
    ({"mse_closed_form": 0.0, "mse_wmu_b": 0.0}, v.PARTIALLY),  # no bias to absorb: cannot tell the two apart
    ({"finite": False}, v.PARTIALLY),
    ({"optimum_gap": NAN, "offset_centred": NAN, "offset_uncentred": NAN, "mse_wmu_b": NAN,
      "mse_closed_form": NAN, "mse_ncc_mismatch": NAN, "finite": False}, v.NOT_REPRODUCED),
])
def test_nc_m1(change, expected):
    assert rules.nc_m1(**{**M1, **change}).verdict == expected


# -- NC-T1, NC-T2 ----------------------------------------------------------------------------

FINAL = {"ce": 2.7e-13, "ls": 3.4e-14, "focal": 5.2e-8, "mse": 7.3e-15}


@pytest.mark.parametrize("final_max, gap, expected", [
    (FINAL, 4e-16, v.REPRODUCED),
    ({**FINAL, "focal": 1e-3}, 4e-16, v.REPRODUCED),      # on the threshold
    ({**FINAL, "focal": 0.15}, 4e-16, v.PARTIALLY),       # FL not collapsed in the budget
    ({**FINAL, "mse": NAN}, NAN, v.PARTIALLY),            # a diverged MSE seed
    ({"ce": 1e-13}, 1e-16, v.PARTIALLY),                  # a loss missing from the measurements fails
    ({k: NAN for k in FINAL}, NAN, v.NOT_REPRODUCED),
    ({}, NAN, v.NOT_REPRODUCED),
])
def test_nc_t1(final_max, gap, expected):
    assert rules.nc_t1(final_max, gap).verdict == expected


@pytest.mark.parametrize("rel, bias, expected", [
    (1.7e-8, 7e-16, v.REPRODUCED), (1e-6, 1e-9, v.REPRODUCED), (2e-6, 7e-16, v.PARTIALLY),
    (1.7e-8, 1e-3, v.PARTIALLY), (NAN, NAN, v.NOT_REPRODUCED), (0.5, 0.5, v.NOT_REPRODUCED),
])
def test_nc_t2(rel, bias, expected):
    assert rules.nc_t2(rel, bias).verdict == expected


# -- NC-T3, NC-T4 ----------------------------------------------------------------------------

MARGINS = {"ce": 3.99, "ls": 3.39, "focal": 2.36, "mse": 0.21}


@pytest.mark.parametrize("args, expected", [
    ((5.7e-19, 7e-15, 1e-14, MARGINS, True, (1e-5, 0.09)), v.REPRODUCED),
    ((5.7e-19, 7e-15, 1e-14, MARGINS, False, (2.9e-5, 0.067)), v.PARTIALLY),   # the stored ci case
    ((-1e-6, 7e-15, 1e-14, MARGINS, True, (1e-5, 0.09)), v.NOT_REPRODUCED),    # a bound fails
    ((5.7e-19, 7e-15, 0.01, MARGINS, False, (2.9e-5, 0.067)), v.NOT_REPRODUCED),  # GD misses t*
    ((5.7e-19, 7e-15, 1e-14, {**MARGINS, "ls": 4.5}, False, (NAN, NAN)), v.NOT_REPRODUCED),  # order fails at the reference
    ((5.7e-19, 7e-15, 1e-14, {**MARGINS, "ls": 3.99}, True, (1e-5, 0.09)), v.NOT_REPRODUCED),  # a tie is not an order
    ((5.7e-19, 7e-15, 1e-14, {"ce": 3.99}, True, (1e-5, 0.09)), v.NOT_REPRODUCED),  # margins missing
    ((NAN, NAN, NAN, {}, False, (NAN, NAN)), v.NOT_REPRODUCED),
])
def test_nc_t3(args, expected):
    assert rules.nc_t3(*args).verdict == expected


T4 = dict(trivial_norm=9.5e-7, nontrivial_norm=2.9, value_gap=3e-14, log_k_gap=2e-16, finite=True, nc2_gap=4.8e-8,
          nc1_small_dim=4.5e-23)


@pytest.mark.parametrize("change, expected", [
    ({}, v.REPRODUCED),
    ({"trivial_norm": 0.5}, v.PARTIALLY),                 # GD did not reach the trivial solution
    ({"nontrivial_norm": 1e-4}, v.PARTIALLY),             # collapsed although predicted non-trivial
    ({"log_k_gap": NAN}, v.PARTIALLY),                    # no trivial CE/LS run measured: fails
    ({"nc2_gap": 2e-4}, v.PARTIALLY),
    ({"finite": False}, v.PARTIALLY),
    ({k: NAN for k in T4} | {"finite": False}, v.NOT_REPRODUCED),
])
def test_nc_t4(change, expected):
    assert rules.nc_t4(**{**T4, **change}).verdict == expected


# -- NC-L1, NC-L2 ----------------------------------------------------------------------------

L1 = dict(start_gap=2e-16, origin_gradient=2e-17, origin_eigenvalue=-0.0235, origin_closed_form=-0.0235,
          saddle_gradient=1e-10, saddle_eigenvalue=-1.9e-3, escape_gap=2e-16, escape_nc2=1e-12)


@pytest.mark.parametrize("change, expected", [
    ({}, v.REPRODUCED),
    ({"saddle_eigenvalue": -1e-7}, v.PARTIALLY),            # a solver's zero does not count as negative curvature
    ({"saddle_eigenvalue": 1e-3}, v.PARTIALLY),             # a local minimum that is not NC
    ({"escape_gap": 0.05, "escape_nc2": 0.7}, v.PARTIALLY),  # GD stays at the saddle
    ({"origin_eigenvalue": -0.02}, v.PARTIALLY),            # closed form off
    ({"origin_closed_form": 0.0}, v.PARTIALLY),             # no closed form to compare: fails
    ({"start_gap": NAN}, v.PARTIALLY),                      # a diverged start
    ({k: NAN for k in L1}, v.NOT_REPRODUCED),
])
def test_nc_l1(change, expected):
    assert rules.nc_l1(**{**L1, **change}).verdict == expected


L2 = dict(focal_negative_margin=-0.057, focal_positive_margins=4.6e-6, ce_ls_min=2.4e-3, optimum_eigenvalue=-1.8e-17,
          optimum_gradient=3.9e-17)


@pytest.mark.parametrize("change, expected", [
    ({}, v.REPRODUCED),
    ({"focal_negative_margin": 0.0}, v.PARTIALLY),       # zero curvature is not indefinite
    ({"focal_positive_margins": 0.0}, v.PARTIALLY),
    ({"ce_ls_min": -1e-10}, v.PARTIALLY),
    ({"optimum_eigenvalue": -1e-3}, v.PARTIALLY),        # negative curvature at the optimum
    ({"optimum_gradient": 1e-6}, v.PARTIALLY),           # not a critical point
    ({k: NAN for k in L2}, v.NOT_REPRODUCED),
])
def test_nc_l2(change, expected):
    assert rules.nc_l2(**{**L2, **change}).verdict == expected


def test_rules_state_what_they_expect_and_derive_passed():
    verdict = rules.nc_t3(5.7e-19, 7e-15, 1e-14, MARGINS, False, (2.9e-5, 0.067))
    assert verdict.passed is False and "window" in verdict.expected and "0.067" in verdict.note
    assert rules.nc_t1(FINAL, 0.0).passed is True
    assert math.isnan(v.largest([1.0, NAN])) and math.isnan(v.smallest([]))


# -- NC-E1, NC-E2 ----------------------------------------------------------------------------

START = {loss: {"nc1": [1.05, 0.91], "nc2_h": [0.71, 0.65], "nc3": [1.48, 1.52], "nc2_w": [0.29, 0.31]}
         for loss in rules.LOSSES}
END = {"ce": {"nc1": [0.022, 0.022], "nc2_h": [0.16, 0.16], "nc3": [0.145, 0.137], "nc2_w": [0.13, 0.118]},
       "ls": {"nc1": [0.016, 0.017], "nc2_h": [0.125, 0.136], "nc3": [0.061, 0.062], "nc2_w": [0.046, 0.049]},
       "focal": {"nc1": [0.032, 0.030], "nc2_h": [0.244, 0.245], "nc3": [0.259, 0.251], "nc2_w": [0.269, 0.253]},
       "mse": {"nc1": [0.0035, 0.0031], "nc2_h": [0.148, 0.15], "nc3": [0.0079, 0.009], "nc2_w": [0.136, 0.139]}}
CHANCE = [0.256 + 0.026 * ((i % 7) - 3) / 2 for i in range(200)]  # mean 0.256, sd ~0.026
ACC = {loss: [1.0, 1.0] for loss in rules.LOSSES}


def _end(**changes):
    return {loss: {**metrics, **changes.get(loss, {})} for loss, metrics in END.items()}


@pytest.mark.parametrize("end, chance, acc, target, expected", [
    (END, CHANCE, ACC, 1.0, v.PARTIALLY_CHECKED),                                       # the stored ci case: FL's W at chance
    (_end(focal={"nc2_w": [0.1, 0.11]}), CHANCE, ACC, 1.0, v.REPRODUCED),
    (_end(focal={"nc2_w": [0.4, 0.41]}), CHANCE, ACC, 1.0, v.PARTIALLY),                  # FL's W farther from the ETF than chance
    (_end(mse={"nc1": [0.9, 0.8]}), CHANCE, ACC, 1.0, v.PARTIALLY),                       # MSE's NC1 does not halve
    (_end(ce={"nc1": [0.5, 0.47]}), CHANCE, ACC, 1.0, v.PARTIALLY_CHECKED),               # ratios 0.48 and 0.52: in the dead zone
    (_end(ls={"nc1": [math.nan, 0.02]}), CHANCE, ACC, 1.0, v.PARTIALLY),                  # a diverged seed fails
    (END, CHANCE, {**ACC, "ce": [1.0, 0.99]}, 1.0, v.PARTIALLY),                          # one seed does not fit
    (END, CHANCE, {**ACC, "ce": [0.98, 0.99]}, 0.97, v.PARTIALLY_CHECKED),                # the gpu target
    (END, [], ACC, 1.0, v.PARTIALLY_CHECKED),                                            # no chance level: W not checked
    ({"ce": END["ce"]}, CHANCE, ACC, 1.0, v.PARTIALLY),                                   # losses missing: they fail
    ({}, [], {}, 1.0, v.NOT_REPRODUCED),
])
def test_nc_e1(end, chance, acc, target, expected):
    assert rules.nc_e1(START, end, chance, acc, target).verdict == expected


def test_nc_e1_with_one_seed_uses_the_draws_alone():
    start = {loss: {m: [vals[0]] for m, vals in START[loss].items()} for loss in rules.LOSSES}
    end = {loss: {m: [vals[0]] for m, vals in END[loss].items()} for loss in rules.LOSSES}
    verdict = rules.nc_e1(start, end, CHANCE, {loss: [1.0] for loss in rules.LOSSES}, 1.0)
    assert verdict.verdict == v.PARTIALLY_CHECKED and "undecided" in verdict.note


@pytest.mark.parametrize("width, epochs, noise, at_scale, expected", [
    (3.26, 1.43, 3.39, False, v.NOT_CHECKED),          # the stored ci toy, whatever the numbers
    (3.26, 1.43, 3.39, True, v.UNDECIDED),             # both within the noise
    (5.0, 4.0, 1.0, True, v.REPRODUCED),
    (5.0, 0.5, 1.0, True, v.PARTIALLY_CHECKED),        # epochs undecided
    (5.0, -2.0, 1.0, True, v.PARTIALLY),               # the gap grows with epochs
    (-3.0, -2.0, 1.0, True, v.NOT_REPRODUCED),
    (5.0, 4.0, NAN, True, v.NOT_CHECKED),              # one seed: no noise estimate
    (NAN, 4.0, 1.0, True, v.PARTIALLY),                # a diverged cell
])
def test_nc_e2(width, epochs, noise, at_scale, expected):
    assert rules.nc_e2(width, epochs, noise, at_scale).verdict == expected
