"""Heads (PAL/FNPAL) and the feature treatments (EFR, RLR) against direct computations."""

import math

import pytest
import torch

from companion import heads, losses, models, train
from companion.theory import unhinged as U

C, D = 5, 7


def make_model(seed=0):
    torch.manual_seed(seed)
    return models.mlp(6, [D], C, activation="tanh").double()


def data(n=20, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.arange(n) % C


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_pal_classifier_is_a_frozen_scaled_simplex_etf(scale):
    head = heads.pal(make_model(), scale=scale, seed=3)
    W = head.classifier.weight
    assert not W.requires_grad and head.classifier.bias is None
    gram = W @ W.T
    expected = scale**2 * (C / (C - 1) * torch.eye(C, dtype=torch.float64) - torch.ones(C, C, dtype=torch.float64) / (C - 1))
    torch.testing.assert_close(gram, expected, rtol=1e-12, atol=1e-12)
    x, _ = data()
    torch.testing.assert_close(head(x), head.features(x) @ W.T)


def test_fnpal_normalizes_the_features_and_the_unhinged_loss_is_minus_one_plus_gamma_cosine():
    head = heads.pal(make_model(), scale=2.0, normalize=True)
    x, y = data()
    h = head.features(x)
    logits = head(x)
    torch.testing.assert_close(logits, (h / h.norm(dim=1, keepdim=True)) @ head.classifier.weight.T)
    gamma = 0.2
    value = losses.get("unhinged", gamma=gamma, reduction="none")(logits, y)
    w_y = head.classifier.weight[y]
    # with sum_c w_c = 0 the unhinged loss is -(1+gamma) w_y . h_hat (eq. 18)
    torch.testing.assert_close(value, -(1 + gamma) * (w_y * h / h.norm(dim=1, keepdim=True)).sum(1))


def test_whole_model_as_features():
    body = models.mlp(6, [9], 4).double()  # 6 -> 9 ReLU -> 4: features without a last activation
    head = heads.pal(body, num_classes=3, whole=True)
    x, _ = data()
    assert head.classifier.weight.shape == (3, 4)
    torch.testing.assert_close(head.features(x), body(x))
    with pytest.raises(ValueError):
        heads.pal(body, whole=True)
    learned = heads.learned(body, 3, whole=True)
    assert learned.classifier.weight.shape == (3, 4) and learned.classifier.weight.requires_grad
    torch.testing.assert_close(learned(x), body(x) @ learned.classifier.weight.T + learned.classifier.bias)


def test_feature_penalty_adds_lambda_sum_of_squared_norms():
    head = heads.learned(make_model())
    x, y = data()
    loss = heads.HeadLoss("ce", head, feature_penalty=0.01)
    logits = head(x)
    expected = losses.get("ce")(logits, y) + 0.01 * head.features(x).pow(2).sum()
    torch.testing.assert_close(loss(logits, y), expected)


def test_rescaled_loss_scales_each_sample_gradient_by_its_detached_feature_norm():
    x, y = data()
    head = heads.pal(make_model(), normalize=True)
    logits = head(x)
    h = head.last_features
    value = heads.HeadLoss("unhinged", head, rescale=True)(logits, y)
    grads = torch.autograd.grad(value, list(head.body.model.body.parameters()))  # the used layers
    # reference: per-sample losses times constants ||h_i|| (no gradient through the factor)
    head2 = heads.pal(make_model(), normalize=True)
    logits2 = head2(x)
    weights = head2.last_features.norm(dim=1).detach()
    reference = (losses.get("unhinged", reduction="none")(logits2, y) * weights).mean()
    ref_grads = torch.autograd.grad(reference, list(head2.body.model.body.parameters()))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)
    assert torch.allclose(h.norm(dim=1), weights)


def test_mismatched_features_raise():
    head = heads.learned(make_model())
    x, y = data()
    head(x)
    with pytest.raises(ValueError, match="eval_loss"):
        heads.HeadLoss("ce", head)(torch.zeros(3, C), y[:3])


def test_pal_training_with_feature_penalty_is_theorem6_on_a_free_feature_body():
    # one-hot inputs and a linear body without bias: H = body.weight are free features, so GD with
    # the mean unhinged loss + (lam/2) sum ||h||^2 is Theorem 6's update with lambda = lam
    n = C * 3
    x, y = torch.eye(n, dtype=torch.float64), torch.tensor(U.labels(C, 3))
    torch.manual_seed(0)
    body = torch.nn.Linear(n, D, bias=False).double()
    head = heads.Head(body, heads.pal(make_model(), seed=1).classifier)
    W = head.classifier.weight.detach().numpy().copy()
    H0 = body.weight.detach().numpy().copy()
    lam, lr, steps, gamma = 0.05, 0.5, 40, 0.3
    loss = heads.HeadLoss("unhinged", head, feature_penalty=lam / 2, gamma=gamma)
    train.fit(head, loss, (x, y), epochs=steps, lr=lr, progress=False, seed=0, eval_loss=losses.get("unhinged"))
    expected = U.anchored_discrete(H0, W, gamma, lam, [lr] * steps)
    assert (head.classifier.weight.detach().numpy() == W).all()
    assert float(abs(body.weight.detach().numpy() - expected).max()) < 1e-12


def test_variant_factory_and_prototype_stats():
    x, y = data()
    head, objective, plain = heads.variant(make_model(), "fnpal", scale=3.0, feature_penalty=0.1, rescale=True, gamma=0.5)
    assert head.normalize and objective.rescale and objective.feature_penalty == 0.1
    assert isinstance(plain, losses.Unhinged) and plain.gamma == 0.5
    logits = head(x)
    assert torch.isfinite(objective(logits, y))
    stats = heads.prototype_stats(head.classifier.weight)
    assert stats["norm_ratio"] == pytest.approx(1.0) and stats["min_norm"] == pytest.approx(3.0)
    assert stats["min_angle"] == pytest.approx(math.degrees(math.acos(-1 / (C - 1))))
    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    stats = heads.prototype_stats(W)
    assert stats["norm_ratio"] == pytest.approx(2.0) and stats["min_angle"] == pytest.approx(45.0)
    with pytest.raises(ValueError):
        heads.variant(make_model(), "etf")
