"""companion.gan: DCGAN shapes, the adversarial losses against BCE and naive formulas, one
training step against a hand-made update, and the Fréchet distance against scipy's sqrtm."""

import copy

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from companion import gan, losses


@pytest.mark.parametrize("size,channels", [(8, 1), (32, 3), (16, 2)])
def test_shapes_and_range(size, channels):
    torch.manual_seed(0)
    G = gan.Generator(latent_dim=16, image_size=size, channels=channels, width=8)
    D = gan.Discriminator(image_size=size, channels=channels, width=8)
    images = G(torch.randn(5, 16))
    assert images.shape == (5, channels, size, size)
    assert images.abs().max() <= 1
    assert D(images).shape == (5,)
    assert G.sample(3).shape == (3, channels, size, size) and G.training


def test_bad_image_size():
    with pytest.raises(ValueError, match="image_size"):
        gan.Generator(image_size=12)
    with pytest.raises(ValueError, match="image_size"):
        gan.Discriminator(image_size=4)


def test_logistic_loss_is_binary_cross_entropy():
    d_real, d_fake = torch.randn(7) * 3, torch.randn(7) * 3
    loss = gan.AdversarialLoss("logistic")
    expected_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones(7))
                  + F.binary_cross_entropy_with_logits(d_fake, torch.zeros(7)))
    torch.testing.assert_close(loss.discriminator(d_real, d_fake), expected_d)
    torch.testing.assert_close(loss.generator(d_fake), F.binary_cross_entropy_with_logits(d_fake, torch.ones(7)))


@pytest.mark.parametrize("k", [1.0, 2.0, 5.0])
def test_rooted_loss_matches_naive_form_and_the_convex_multiclass_loss(k):
    m = torch.linspace(-6, 6, 25, dtype=torch.float64)
    loss = gan.AdversarialLoss("rooted", k=k)
    naive = k * (1 + torch.exp(-m)) ** (1 / k)
    torch.testing.assert_close(loss(m), naive.mean(), rtol=1e-12, atol=0)
    logits = torch.stack([m, torch.zeros_like(m)], dim=1)  # class 0 with margin m
    multiclass = losses.get("rooted", k=k)(logits, torch.zeros(len(m), dtype=torch.long))
    torch.testing.assert_close(loss(m), multiclass, rtol=1e-12, atol=0)
    d_real, d_fake = torch.randn(6), torch.randn(6)
    naive_d = (k * (1 + torch.exp(-d_real)) ** (1 / k)).mean() + (k * (1 + torch.exp(d_fake)) ** (1 / k)).mean()
    torch.testing.assert_close(loss.discriminator(d_real, d_fake), naive_d, rtol=1e-5, atol=0)


def test_rooted_tends_to_logistic_plus_k():
    m = torch.linspace(-5, 5, 11, dtype=torch.float64)
    k = 1e6
    gap = gan.AdversarialLoss("rooted", k=k)(m) - k - gan.AdversarialLoss("logistic")(m)
    assert abs(gap.item()) < 1e-4


def test_loss_validation():
    with pytest.raises(ValueError):
        gan.AdversarialLoss("hinge")
    with pytest.raises(ValueError):
        gan.AdversarialLoss("rooted", k=0)


@pytest.mark.parametrize("name", ["logistic", "rooted"])
def test_train_step_applies_the_two_gradient_steps(name):
    torch.manual_seed(1)
    G, D = gan.Generator(8, 8, 1, 4), gan.Discriminator(8, 1, 4)
    loss = gan.AdversarialLoss(name, k=2.0)
    real = torch.rand(6, 1, 8, 8) * 2 - 1
    G_ref, D_ref = copy.deepcopy(G), copy.deepcopy(D)
    lr = 0.1
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=lr), torch.optim.SGD(D.parameters(), lr=lr)
    stats = gan.train_step(G, D, opt_g, opt_d, real, loss, torch.Generator().manual_seed(3))

    # the same two steps by hand, from copies and the same latents
    latents = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(6, 8, generator=latents), torch.randn(6, 8, generator=latents)
    with torch.no_grad():
        fake = G_ref(z1)
    d_loss = loss(D_ref(real)) + loss(-D_ref(fake))
    grads = torch.autograd.grad(d_loss, list(D_ref.parameters()))
    with torch.no_grad():
        for p, g in zip(D_ref.parameters(), grads):
            p -= lr * g
    g_loss = loss(D_ref(G_ref(z2)))
    grads = torch.autograd.grad(g_loss, list(G_ref.parameters()))
    with torch.no_grad():
        for p, g in zip(G_ref.parameters(), grads):
            p -= lr * g
    for a, b in zip(list(D.parameters()) + list(G.parameters()), list(D_ref.parameters()) + list(G_ref.parameters())):
        torch.testing.assert_close(a, b)
    assert stats["d_loss"] == pytest.approx(d_loss.item(), rel=1e-6)
    assert stats["g_loss"] == pytest.approx(g_loss.item(), rel=1e-6)


def test_fit_records_and_is_seeded():
    real = torch.rand(40, 1, 8, 8) * 2 - 1

    def run():
        torch.manual_seed(0)
        G, D = gan.Generator(8, 8, 1, 4), gan.Discriminator(8, 1, 4)
        history = gan.fit(G, D, real, gan.AdversarialLoss("rooted"), steps=10, batch_size=16, record_every=4,
                          seed=5, callback=lambda step, G, D: {"norm": sum(p.norm().item() for p in G.parameters())})
        return history

    first, second = run(), run()
    assert list(first.step) == [4, 8, 10]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "norm"} <= set(first.columns)
    pd_equal = np.allclose(first.drop(columns="step").to_numpy(), second.drop(columns="step").to_numpy())
    assert pd_equal and np.isfinite(first.d_loss).all()


def _brute_force_fd(a, b):
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(sa @ sb).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa + sb - 2 * covmean))


def test_frechet_distance_matches_scipy_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 0.5
    assert gan.frechet_distance(a, b) == pytest.approx(_brute_force_fd(a, b), rel=1e-8)
    assert gan.frechet_distance(a, b) == pytest.approx(gan.frechet_distance(b, a), rel=1e-10)
    assert gan.frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(gan.frechet_distance(a, b))


def test_frechet_distance_known_values():
    # diagonal covariances: ||mu_a - mu_b||^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var_a, var_b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = 1 + 0 + 4 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0
    value = gan.frechet_distance_from_statistics(mu_a, np.diag(var_a), mu_b, np.diag(var_b))
    assert value == pytest.approx(expected, rel=1e-12)
    x = np.random.default_rng(1).normal(size=(300, 4))
    assert abs(gan.frechet_distance(x, x)) < 1e-9
    assert gan.frechet_distance(x, x + 3.0) == pytest.approx(4 * 9.0, rel=1e-9)
