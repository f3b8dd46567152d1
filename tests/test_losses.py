"""Every loss against an independent computation (naive formulas, torch built-ins, finite differences)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from companion import losses
from companion.theory import rooted

F64 = torch.float64  # every tensor here is float64 explicitly (no global default: it would leak)
GEN = torch.Generator().manual_seed(0)
N, K = 7, 5
LOGITS = torch.randn(N, K, generator=GEN, dtype=F64) * 3
TARGETS = torch.randint(0, K, (N,), generator=GEN)


def naive(name, z, y, **p):
    """Straight-from-the-definition per-sample losses via softmax probabilities."""
    prob = torch.softmax(z, 1)
    p_y = prob[torch.arange(len(y)), y]
    k = z.shape[1]
    if name == "ce":
        return -torch.log(p_y)
    if name == "ls":
        a = p["alpha"]
        target = (1 - a) * F.one_hot(y, k).to(z) + a / k
        return -(target * torch.log(prob)).sum(1)
    if name == "focal":
        return -((1 - p_y) ** p["gamma"]) * torch.log(p_y)
    if name == "mse":
        return ((z - p["scale"] * F.one_hot(y, k).to(z)) ** 2).sum(1) / k
    if name == "unhinged":
        g = p["gamma"]
        return torch.stack([-z[i, y[i]] + g * sum(z[i, j] for j in range(k) if j != y[i]) for i in range(len(y))])
    if name == "rooted":
        return p["k"] * p_y ** (-1 / p["k"])
    if name == "rooted_gce":
        return p["m"] * (1 - p_y ** (1 / p["k"]))
    raise KeyError(name)


CASES = [
    ("ce", {}), ("ls", {"alpha": 0.1}), ("ls", {"alpha": 0.0}), ("focal", {"gamma": 3.0}),
    ("focal", {"gamma": 0.5}), ("mse", {"scale": 15.0}), ("mse", {"scale": 1.0}),
    ("unhinged", {"gamma": 0.25}), ("unhinged", {"gamma": 1.0}), ("rooted", {"k": 3.0}),
    ("rooted", {"k": 0.5}), ("rooted_gce", {"k": 3.0, "m": 3.0}), ("rooted_gce", {"k": 8.0, "m": 10.0}),
]


@pytest.mark.parametrize("name,params", CASES)
def test_matches_naive_definition(name, params):
    loss = losses.get(name, reduction="none", **params)
    torch.testing.assert_close(loss(LOGITS, TARGETS), naive(name, LOGITS, TARGETS, **params))


@pytest.mark.parametrize("name,params", CASES)
def test_gradient_matches_finite_differences(name, params):
    # moderate logits: at |z| ~ 10, k = 0.5 gives losses ~1e8 and finite differences lose their digits
    z = (LOGITS / 3).clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: losses.get(name, **params)(x, TARGETS), (z,))


@pytest.mark.parametrize("name,params", CASES)
def test_reductions_and_class_weights(name, params):
    per_sample = losses.get(name, reduction="none", **params)(LOGITS, TARGETS)
    weights = torch.rand(K, generator=GEN, dtype=F64) + 0.5
    torch.testing.assert_close(losses.get(name, **params)(LOGITS, TARGETS), per_sample.mean())
    torch.testing.assert_close(losses.get(name, reduction="sum", **params)(LOGITS, TARGETS), per_sample.sum())
    torch.testing.assert_close(
        losses.get(name, **params)(LOGITS, TARGETS, class_weights=weights),
        (weights[TARGETS] * per_sample).sum() / N,
    )


def test_builtin_equivalents():
    torch.testing.assert_close(losses.get("ce")(LOGITS, TARGETS), F.cross_entropy(LOGITS, TARGETS))
    torch.testing.assert_close(losses.get("ls", alpha=0.2)(LOGITS, TARGETS),
                               F.cross_entropy(LOGITS, TARGETS, label_smoothing=0.2))
    torch.testing.assert_close(losses.get("mse", scale=15.0)(LOGITS, TARGETS),
                               F.mse_loss(LOGITS, 15.0 * F.one_hot(TARGETS, K).double()))
    torch.testing.assert_close(losses.get("focal", gamma=0.0)(LOGITS, TARGETS), F.cross_entropy(LOGITS, TARGETS))


def test_unhinged_default_gamma_is_one_over_k_minus_one():
    torch.testing.assert_close(losses.get("unhinged")(LOGITS, TARGETS),
                               losses.get("unhinged", gamma=1 / (K - 1))(LOGITS, TARGETS))


def test_rooted_binary_case_is_the_rooted_logistic_objective():
    z = torch.linspace(-20, 20, 101, dtype=F64)
    logits = torch.stack([z, torch.zeros_like(z)], 1)
    value = losses.get("rooted", k=2.0, reduction="none")(logits, torch.zeros(101, dtype=torch.long))
    np.testing.assert_allclose(value.numpy(), rooted.rooted_loss(z.numpy(), 2.0), rtol=1e-12)


def test_rooted_forms_tend_to_cross_entropy_as_k_grows():
    ce = losses.get("ce")(LOGITS, TARGETS)
    errors_convex = [abs(losses.get("rooted", k=k, minus_k=True)(LOGITS, TARGETS) - ce) for k in (3, 30, 300, 3000)]
    errors_gce = [abs(losses.get("rooted_gce", k=k, m=k)(LOGITS, TARGETS) - ce) for k in (3, 30, 300, 3000)]
    for errors in (errors_convex, errors_gce):
        assert all(b < a for a, b in zip(errors, errors[1:]))
        assert errors[-1] < 1e-2


def test_extreme_logits_stay_finite():
    z = torch.tensor([[-500.0, 500.0, 0.0]], dtype=F64)
    y = torch.tensor([0])
    for name, params in CASES:
        if name in ("mse", "unhinged"):
            continue
        value = losses.get(name, **params)(z, y)
        assert torch.isfinite(value), name


@pytest.mark.parametrize("gamma", [0.5, 1.0, 3.0])
def test_focal_gradient_is_finite_when_p_y_rounds_to_one(gamma):
    z = torch.tensor([[60.0, 0.0, 0.0]], dtype=F64, requires_grad=True)  # p_y == 1 in float64
    losses.get("focal", gamma=gamma)(z, torch.tensor([0])).backward()
    assert torch.isfinite(z.grad).all()


def test_half_precision_logits_give_float32_loss():
    value = losses.get("focal")(LOGITS.to(torch.bfloat16), TARGETS)
    assert value.dtype == torch.float32


@pytest.mark.parametrize("name,params,match", [
    ("cee", {}, "Did you mean 'ce'"),
    ("ls", {"alpha": 1.0}, "alpha must lie in"),
    ("ls", {"alpha": -0.1}, "alpha must lie in"),
    ("focal", {"gamma": -1.0}, "gamma must lie in"),
    ("rooted", {"k": 0.0}, "k must lie in"),
    ("rooted_gce", {"k": 3.0, "m": -1.0}, "m must lie in"),
    ("mse", {"scale": 0.0}, "scale must lie in"),
    ("unhinged", {"gamma": 0.0}, "gamma must lie in"),
    ("ce", {"alpha": 0.1}, "accepts"),
    ("ce", {"reduction": "avg"}, "reduction must be one of"),
])
def test_bad_names_and_parameters_raise_clear_errors(name, params, match):
    with pytest.raises(ValueError, match=match):
        losses.get(name, **params)


# -- the dynamical loss schedule ----------------------------------------------------------


def test_peak_weight_matches_the_paper_value():
    schedule = losses.DynamicalWeights(3, amplitude=70, period=5000)
    gamma = schedule.weights(2500)
    assert math.isclose(gamma[0].item(), 210 / 72, rel_tol=1e-12)
    assert math.isclose(gamma[1].item(), 3 / 72, rel_tol=1e-12)


def test_schedule_ramps_renormalizes_and_cycles():
    T = 10
    schedule = losses.DynamicalWeights(4, amplitude=5, period=T)
    table = schedule.table(3 * (T + 1))
    torch.testing.assert_close(table.sum(1), torch.full((3 * (T + 1),), 4.0, dtype=F64))
    assert (table > 0).all()
    torch.testing.assert_close(table[0], torch.ones(4, dtype=F64))  # tau = 0: plain loss
    torch.testing.assert_close(table[T], torch.ones(4, dtype=F64))  # tau = T: plain again, period lasts T+1 steps
    raw = [schedule.raw_weight(t, 5.0) for t in range(T + 1)]
    assert raw[T // 2] == 5.0 and raw == sorted(raw[: T // 2 + 1]) + sorted(raw[T // 2 + 1:], reverse=True)
    emphasized = [int(table[s].argmax()) for s in (T // 2, T + 1 + T // 2, 2 * (T + 1) + T // 2)]
    assert emphasized == [0, 1, 2]


def test_last_period_is_plain_when_total_steps_known():
    schedule = losses.DynamicalWeights(3, amplitude=70, period=10, total_steps=33)
    torch.testing.assert_close(schedule.weights(22 + 5), torch.ones(3, dtype=F64))
    assert schedule.weights(11 + 5)[1] > 2
    no_plain = losses.DynamicalWeights(3, amplitude=70, period=10, total_steps=33, last_period_plain=False)
    assert no_plain.weights(22 + 5)[2] > 2


def test_dynamical_loss_is_base_loss_with_current_weights():
    schedule = losses.DynamicalWeights(K, amplitude=10, period=8)
    dyn = losses.DynamicalLoss(losses.get("ce"), schedule)
    dyn.advance(3)
    expected = losses.get("ce")(LOGITS, TARGETS, class_weights=schedule.weights(3))
    torch.testing.assert_close(dyn(LOGITS, TARGETS), expected)


@pytest.mark.parametrize("kwargs,match", [
    ({"num_classes": 1, "amplitude": 2, "period": 5}, "num_classes"),
    ({"num_classes": 3, "amplitude": 0.5, "period": 5}, "amplitude"),
    ({"num_classes": 3, "amplitude": 2, "period": 0}, "period"),
])
def test_schedule_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        losses.DynamicalWeights(**kwargs)
