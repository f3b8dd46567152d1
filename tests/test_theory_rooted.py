"""Closed forms of the rooted logistic objective against finite differences and naive formulas."""

import numpy as np
import pytest

from companion.theory import rooted

Z = np.linspace(-8, 8, 161)
KS = [0.5, 1.0, 2.0, 3.0, 7.0, 50.0]


def central(f, z, h=1e-5):
    return (f(z + h) - f(z - h)) / (2 * h)


@pytest.mark.parametrize("k", KS)
def test_slope_and_curvature_match_finite_differences(k):
    # differentiate l_k - k written with expm1, so the constant k does not eat the digits
    shifted = lambda x: k * np.expm1(np.logaddexp(0.0, -x) / k)  # noqa: E731
    np.testing.assert_allclose(rooted.rooted_slope(Z, k), central(shifted, Z), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(rooted.rooted_curvature(Z, k), central(lambda x: rooted.rooted_slope(x, k), Z), rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("k", KS)
def test_loss_and_ratio_match_naive_formulas(k):
    u = np.exp(-Z)
    np.testing.assert_allclose(rooted.rooted_loss(Z, k), k * (1 + u) ** (1 / k), rtol=1e-13)
    naive_logistic_curv = u / (1 + u) ** 2
    np.testing.assert_allclose(rooted.curvature_ratio(Z, k), rooted.rooted_curvature(Z, k) / naive_logistic_curv, rtol=1e-10)


def test_logistic_helpers():
    np.testing.assert_allclose(rooted.logistic_loss(Z), np.log1p(np.exp(-Z)), rtol=1e-13)
    assert np.isfinite(rooted.rooted_loss(-1000.0, 50.0)) or rooted.rooted_loss(-1000.0, 50.0) == np.inf
    assert rooted.logistic_loss(-1000.0) == pytest.approx(1000.0)


def test_gradient_weights():
    p = np.array([0.01, 0.5, 0.9])
    np.testing.assert_allclose(rooted.weight_convex(p, 3.0), p ** (-1 / 3))
    np.testing.assert_allclose(rooted.weight_gce(p, 3.0, 6.0), 2.0 * p ** (1 / 3))
