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
