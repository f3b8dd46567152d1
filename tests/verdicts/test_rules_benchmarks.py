"""The rules of companion.verdicts.benchmarks, table-driven: NaN, empty, borderline and off-scale inputs."""

import pytest

from companion import verdicts as v
from companion.verdicts import benchmarks as rules

NAN = float("nan")


@pytest.mark.parametrize("seconds, at_scale, expected", [
    ([1.4, 1.41, 1.39], True, v.NOT_REPRODUCED),
    ([0.8, 0.82, 0.79], True, v.REPRODUCED),
    ([0.98, 1.05, 0.97, 1.03], True, v.UNDECIDED),      # mean 1.008, 2 SE 0.04: inside the dead zone
    ([1.0], True, v.REPRODUCED),                        # one epoch on the target: no spread, <= holds
    ([0.8, NAN], True, v.NOT_REPRODUCED),                # a failed timing
    ([], True, v.NOT_REPRODUCED),                        # nothing timed
    ([0.01, 0.011], False, v.NOT_CHECKED),              # the ci MLP on a CPU
])
def test_b_1(seconds, at_scale, expected):
    assert rules.b_1(seconds, at_scale).verdict == expected


@pytest.mark.parametrize("ratios, at_scale, expected", [
    ([12.0, 11.5], True, v.REPRODUCED),
    ([5.0, 5.5], True, v.NOT_REPRODUCED),
    ([7.0, 9.5], True, v.UNDECIDED),                    # mean 8.25, 2 SE 1.25
    ([8.5], True, v.REPRODUCED),                        # one repeat: margin 0, said in the note
    ([NAN, 12.0], True, v.NOT_REPRODUCED),
    ([1.5, 2.0, 1.3], False, v.NOT_CHECKED),
])
def test_b_2(ratios, at_scale, expected):
    verdict = rules.b_2(ratios, at_scale)
    assert verdict.verdict == expected
    if len(ratios) == 1:
        assert "no spread" in verdict.note


@pytest.mark.parametrize("nc, epochs, at_scale, expected", [
    ([0.3, 0.31, 0.29], [1.4, 1.41, 1.39], True, v.REPRODUCED),
    ([2.0, 2.1, 2.05], [1.4, 1.41, 1.39], True, v.NOT_REPRODUCED),
    ([1.35, 1.5, 1.42], [1.4, 1.38, 1.45], True, v.UNDECIDED),
    ([NAN], [1.4], True, v.NOT_REPRODUCED),
    ([0.0097, 0.0099], [0.0107, 0.012], False, v.NOT_CHECKED),
])
def test_b_3(nc, epochs, at_scale, expected):
    assert rules.b_3(nc, epochs, at_scale).verdict == expected


def test_off_scale_notes_keep_what_the_stand_in_measured():
    verdict = rules.b_2([1.5, 2.0], False)
    assert "not" in verdict.verdict and "1.75" in verdict.note and verdict.passed is None
