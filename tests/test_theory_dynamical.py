"""theory.dynamical against independent computations: the official schedule loop, polynomial
roots of the doubled map, finite differences, and brute-force scans of time series."""

import math

import numpy as np
import pytest

from companion import losses
from companion.theory import dynamical as dyn


# -- the schedule, against a replica of the official training loop ---------------------------


def official_gammas(total_time, T, w_max, C=3, last_period_no_osc=True):
    """Gamma at every step as the official notebook's loop produces it (c_fn, t > T rollover)."""
    t, c, out = 0, 0, []
    for i in range(total_time):
        slope = 2 * (w_max - 1) / T
        w = 1 + t * slope if t < T / 2 else 2 * w_max - t * slope - 1
        raw = np.ones(C)
        raw[c] = w
        out.append(raw / raw.sum() * C)  # the weights used by the gradient of step i
        t += 1
        if t > T:
            t, c = 0, (c + 1) % C
            if last_period_no_osc and i > total_time - T:
                w_max = 1
    return np.array(out)


@pytest.mark.parametrize("total_time", [35_000, 70_000])
def test_dynamical_weights_match_the_official_loop(total_time):
    schedule = losses.DynamicalWeights(3, amplitude=70, period=5000, total_steps=total_time)
    expected = official_gammas(total_time, 5000, 70)
    steps = np.r_[0:60, 2440:2560, 4990:5012, 29_990:30_020, total_time - 5100:total_time:7, total_time - 1]
    ours = np.stack([schedule.weights(int(s)).numpy() for s in steps])
    np.testing.assert_allclose(ours, expected[steps], rtol=1e-12)
    # the last period is plain cross-entropy, every earlier one oscillates
    assert np.allclose(expected[-4000:], 1.0) and expected[: total_time - 5100].max() > 2.9


@pytest.mark.parametrize("total_time,T", [(35_000, 5000), (70_000, 5000), (1000, 99), (990, 99), (1000, 100),
                                          (1600, 159), (110, 9), (107, 9), (120, 10), (12, 5), (5, 5)])
def test_official_last_period_rule_matches_the_official_loop(total_time, T):
    """official_last_period_plain against the replica of the loop; with its answer as
    last_period_plain, DynamicalWeights reproduces the official weights at every step."""
    official = official_gammas(total_time, T, 70)
    last_start = (total_time - 1) // (T + 1) * (T + 1)
    plain_period = last_start > 0 and bool(np.allclose(official[last_start:], 1.0))
    assert dyn.official_last_period_plain(total_time, T) == plain_period
    schedule = losses.DynamicalWeights(3, amplitude=70, period=T, total_steps=total_time,
                                       last_period_plain=plain_period)
    np.testing.assert_allclose(schedule.table(total_time).numpy(), official, rtol=1e-12)


def test_peak_weights_closed_form():
    assert dyn.peak_weights(3, 70) == pytest.approx((210 / 72, 3 / 72), rel=1e-15)
    gamma_c, gamma_o = dyn.peak_weights(10, 70)
    assert gamma_c == pytest.approx(8.86, abs=0.005) and gamma_o == pytest.approx(0.127, abs=0.0005)
    for C, A in [(2, 1.0), (3, 5.0), (7, 30.0)]:
        top = losses.DynamicalWeights(C, amplitude=A, period=100).weights(50).numpy()
        assert dyn.peak_weights(C, A) == pytest.approx((top[0], top[1]), rel=1e-12)
    assert gamma_c + 9 * gamma_o == pytest.approx(10.0)
    with pytest.raises(ValueError):
        dyn.peak_weights(3, 0.5)


# -- GD stability on a quadratic ----------------------------------------------------------------


@pytest.mark.parametrize("lr", [0.1, 1.0, 3.0])
def test_gd_on_a_quadratic_is_stable_exactly_below_two_over_lr(lr):
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    threshold = dyn.stability_threshold(lr)
    for top, should_converge in [(0.98 * threshold, True), (1.02 * threshold, False)]:
        eigenvalues = np.array([top, 0.5 * threshold, 0.2 * threshold, 0.1 * threshold, 0.05 * threshold])
        hessian = basis @ np.diag(eigenvalues) @ basis.T
        x = rng.standard_normal(5)
        for _ in range(3000):
            x = x - lr * hessian @ x
        assert (np.linalg.norm(x) < 1e-6) == should_converge
        assert (abs(dyn.gd_quadratic_factor(top, lr)) < 1) == should_converge


# -- the double-well map ------------------------------------------------------------------------


def test_double_well_step_is_gradient_descent_with_curvature_two_gamma():
    x, h, gamma, lr = np.linspace(-1.4, 1.4, 29), 1e-6, 1.7, 0.3
    slope = (dyn.double_well_loss(x + h, gamma) - dyn.double_well_loss(x - h, gamma)) / (2 * h)
    np.testing.assert_allclose(dyn.double_well_step(x, lr * gamma), x - lr * slope, atol=1e-8)
    curvature = (dyn.double_well_loss(1 + h, gamma) - 2 * dyn.double_well_loss(1.0, gamma)
                 + dyn.double_well_loss(1 - h, gamma)) / h**2
    assert curvature == pytest.approx(2 * gamma, rel=1e-5)
    assert dyn.double_well_lr_curvature(lr * gamma) == pytest.approx(lr * curvature, rel=1e-5)


def two_cycles(a):
    """Real 2-cycles of f(x) = x - a x (x^2 - 1) from the roots of f(f(x)) - x, with stability."""
    f = np.polynomial.Polynomial([0, 1 + a, 0, -a])
    roots = (f(f) - np.polynomial.Polynomial([0, 1])).roots()
    real = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
    cycle = real[np.abs(f(real) - real) > 1e-7]  # drop the fixed points 0, +-1
    derivative = f.deriv()
    return cycle, [abs(derivative(p) * derivative(f(p))) for p in cycle]


def test_orbit_periods_follow_the_cascade():
    assert dyn.attractor_period(dyn.double_well_orbit(0.99, burn_in=20_000)[0]) == 1
    for a, period in [(1.1, 2), (1.2, 2), (1.26, 4)]:
        assert dyn.attractor_period(dyn.double_well_orbit(a, burn_in=20_000)[0]) == period, a
    assert dyn.attractor_period(dyn.double_well_orbit(1.33, burn_in=5000, keep=256)[0], max_period=64) == 0
    # the 2-cycle the map settles on at a = 1.1 is a stable root of f(f(x)) = x; none exists for a < 1
    orbit = dyn.double_well_orbit(1.1, burn_in=20_000, keep=2)[0]
    cycle, multipliers = two_cycles(1.1)
    for point in orbit:
        i = np.argmin(np.abs(cycle - point))
        assert abs(cycle[i] - point) < 1e-9 and multipliers[i] < 1
    assert len(two_cycles(0.9)[0]) == 0 or min(two_cycles(0.9)[1]) > 1


def test_bifurcation_diagram_and_driven_map():
    a = np.array([0.95, 1.1, 1.26])
    a_rep, x = dyn.bifurcation_diagram(a, burn_in=20_000, keep=16)
    assert a_rep.shape == x.shape == (48,)
    branches = [dyn.count_branches(x[a_rep == v], gap=1e-6) for v in a]
    assert branches == [1, 2, 4]
    ramp = np.full(50, 1.1)
    x_t = dyn.double_well_driven(ramp, x0=0.3)
    expected, x0 = [], 0.3
    for _ in range(50):
        x0 = dyn.double_well_step(x0, 1.1)
        expected.append(x0)
    np.testing.assert_allclose(x_t, expected, rtol=1e-15)


# -- time-series tools ----------------------------------------------------------------------


def test_attractor_period_on_sequences():
    assert dyn.attractor_period([3.0] * 10) == 1
    assert dyn.attractor_period([1.0, 2.0] * 10) == 2
    assert dyn.attractor_period([1.0, 2.0, 3.0, 4.0] * 10) == 4
    assert dyn.attractor_period(np.random.default_rng(0).random(100)) == 0


def brute_force_onset(values, window, fraction, tol):
    d = np.diff(values)
    for i in range(1, len(d) - window + 1):
        pairs = [(d[j - 1] * d[j] < 0 and abs(d[j]) > tol and abs(d[j - 1]) > tol) for j in range(i, i + window)]
        if np.mean(pairs) >= fraction:
            return i
    return None


@pytest.mark.parametrize("onset", [40, 137])
def test_period_two_onset_matches_brute_force(onset):
    t = np.arange(400, dtype=np.float64)
    rng = np.random.default_rng(onset)
    values = 1.0 / (1 + t)  # smooth descent: no alternation
    values[onset:] += 0.01 * (-1.0) ** t[onset:] * (1 + 0.1 * rng.random(400 - onset))
    values[onset + 150: onset + 153] = values[onset + 149]  # a short glitch the fraction tolerates
    found = dyn.period_two_onset(values, window=30, fraction=0.9)
    assert found == brute_force_onset(values, 30, 0.9, 1e-12)
    assert abs(found - onset) <= 5  # a window of 30 at fraction 0.9 may start 3 early, plus the jump
    assert dyn.period_two_onset(1.0 / (1 + t), window=30) is None
    assert dyn.period_two_onset(values, window=30, start=onset + 20) == onset + 20


def test_first_crossing_and_branches():
    values = np.array([0.5, np.nan, 1.5, 2.5, 1.0, 3.0])
    assert dyn.first_crossing(values, 2.0) == 3
    assert dyn.first_crossing(values, 2.0, start=4) == 5
    assert dyn.first_crossing(values, 5.0) is None
    assert dyn.count_branches([1.0, 1.0 + 1e-9, 2.0, 2.0, 3.5], gap=1e-3) == 3
    assert dyn.count_branches([], gap=1.0) == 0
    assert dyn.alternating([1.0, -1.0, 1.0, 1.0], tol=0.0).tolist() == [True, True, False]
    assert dyn.stability_threshold(0.5) == 4.0
    with pytest.raises(ValueError):
        dyn.stability_threshold(0.0)
    assert math.isclose(dyn.stability_threshold(1.0), 2.0)


def test_oscillation_regimes_on_the_double_well_cascade():
    for a, regime in [(0.95, "smooth"), (1.1, "period 2"), (1.26, "period 4"), (1.4, "band")]:
        orbit = dyn.double_well_orbit(a, burn_in=20_000, keep=401)[0]
        assert dyn.oscillation_regimes(np.diff(orbit), window=100) == [regime] * 4, a
    t = np.arange(300, dtype=np.float64)
    descent = np.diff(np.exp(-t / 100))                    # smooth: one sign, slowly varying
    two_cycle = 0.1 * (-1.0) ** t * (1 + t / 300)           # alternating, drifting amplitude
    assert dyn.oscillation_regimes(descent, window=100) == ["smooth"] * 2
    assert dyn.oscillation_regimes(two_cycle, window=100) == ["period 2"] * 3
    chaos = np.empty(300)
    chaos[0] = 0.3
    for i in range(1, 300):                                  # the logistic map at r = 3.9
        chaos[i] = 3.9 * chaos[i - 1] * (1 - chaos[i - 1])
    assert dyn.oscillation_regimes(np.diff(chaos), window=100) == ["band"] * 2
    assert dyn.oscillation_regimes(np.zeros(250), window=100) == ["smooth"] * 2
