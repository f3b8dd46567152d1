"""A small DCGAN with a pluggable binary adversarial loss, and the Fréchet distance.

The rooted-loss paper swaps the softplus terms of StyleGAN2-ADA's adversarial losses for the
binary rooted logistic loss (official ``StyleGAN2-ADA-RLO/loss.py``, k = 2). Written with a
"margin" m, both losses are l(m) applied to

* the discriminator: m = D(x) on real images and m = -D(G(z)) on fakes,
* the generator (non-saturating): m = D(G(z)),

with l(m) = softplus(-m) = log(1 + e^-m) for the standard ``logistic`` GAN and
l(m) = k (1 + e^-m)^(1/k) for ``rooted`` (the constant k does not change any gradient).

``Generator`` / ``Discriminator`` are DCGAN networks (Radford et al. 2016: strided
(transposed) convolutions, batch norm, ReLU / LeakyReLU(0.2), tanh output in [-1, 1]) for
square images of side 8 (scikit-learn digits) or 32 (CIFAR-10). ``frechet_distance`` is the
Fréchet distance between Gaussians fitted to two feature sets (the formula behind FID); the
companion computes it on features of a classifier it trains itself, since no Inception
weights can be downloaded here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

LOSSES = ("logistic", "rooted")


def _stages(image_size: int) -> int:
    """Number of factor-2 resolution steps between 4x4 and the image size."""
    stages = int(round(math.log2(image_size / 4)))
    if image_size < 8 or 4 * 2**stages != image_size:
        raise ValueError(f"image_size must be 4 * 2^s with s >= 1 (8, 16, 32, ...), got {image_size}")
    return stages


class Generator(nn.Module):
    """z (N, latent_dim) -> images (N, channels, size, size) in [-1, 1]."""

    def __init__(self, latent_dim: int = 64, image_size: int = 32, channels: int = 3, width: int = 64):
        super().__init__()
        stages = _stages(image_size)
        self.latent_dim = latent_dim
        top = width * 2 ** (stages - 1)
        self.project = nn.Sequential(nn.Linear(latent_dim, top * 16, bias=False), nn.BatchNorm1d(top * 16), nn.ReLU())
        self.top = top
        layers: list[nn.Module] = []
        for stage in range(stages - 1):
            c_in = top // 2**stage
            layers += [nn.ConvTranspose2d(c_in, c_in // 2, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(c_in // 2), nn.ReLU()]
        layers += [nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z).view(len(z), self.top, 4, 4))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images from fresh latents (in eval mode: batch norm uses its running statistics)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            images = self(z)
        self.train(was_training)
        return images


class Discriminator(nn.Module):
    """images (N, channels, size, size) -> one logit D(x) per image, shape (N,)."""

    def __init__(self, image_size: int = 32, channels: int = 3, width: int = 64):
        super().__init__()
        stages = _stages(image_size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for stage in range(stages - 1):
            c_in = width * 2**stage
            layers += [nn.Conv2d(c_in, 2 * c_in, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c_in),
                       nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width * 2 ** (stages - 1) * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).flatten(1))[:, 0]


@dataclass(frozen=True)
class AdversarialLoss:
    """l(m) of the module docstring: ``logistic`` (softplus(-m)) or ``rooted`` (k (1 + e^-m)^(1/k))."""

    name: str = "logistic"
    k: float = 2.0

    def __post_init__(self):
        if self.name not in LOSSES:
            raise ValueError(f"adversarial loss must be one of {LOSSES}, got {self.name!r}")
        if not self.k > 0:
            raise ValueError(f"k must be > 0, got {self.k}")

    def __call__(self, margin: torch.Tensor) -> torch.Tensor:
        """Mean of l over the margins (computed in float32 or wider)."""
        if margin.dtype in (torch.float16, torch.bfloat16):
            margin = margin.float()
        softplus = F.softplus(-margin)
        per_sample = softplus if self.name == "logistic" else self.k * torch.exp(softplus / self.k)
        return per_sample.mean()

    def discriminator(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """l(D(x)) + l(-D(G(z))), each averaged over its batch."""
        return self(d_real) + self(-d_fake)

    def generator(self, d_fake: torch.Tensor) -> torch.Tensor:
        """The non-saturating generator loss l(D(G(z)))."""
        return self(d_fake)

    def __str__(self) -> str:
        return "logistic (softplus)" if self.name == "logistic" else f"rooted k={self.k:g}"


def train_step(G: Generator, D: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
               real: torch.Tensor, loss: AdversarialLoss, generator: torch.Generator | None = None
               ) -> dict[str, float]:
    """One discriminator step, then one generator step, on a batch of real images in [-1, 1].

    Fresh latents are drawn for each of the two steps (from ``generator``, on the CPU, so a
    seed gives the same latents on every device). Returns the two losses and the mean
    discriminator logits on the real and the fake batch.
    """
    n, device = len(real), real.device
    z = torch.randn(n, G.latent_dim, generator=generator).to(device)
    with torch.no_grad():
        fake = G(z)
    d_real, d_fake = D(real), D(fake)
    d_loss = loss.discriminator(d_real, d_fake)
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()

    z = torch.randn(n, G.latent_dim, generator=generator).to(device)
    g_loss = loss.generator(D(G(z)))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    return {"d_loss": d_loss.item(), "g_loss": g_loss.item(), "d_real": d_real.mean().item(),
            "d_fake": d_fake.mean().item()}


def fit(G: Generator, D: Discriminator, real: torch.Tensor, loss: AdversarialLoss, *, steps: int,
        batch_size: int = 64, lr: float = 2e-4, betas: tuple[float, float] = (0.5, 0.999), seed: int = 0,
        record_every: int = 100, callback=None) -> pd.DataFrame:
    """Train with Adam (the DCGAN settings by default) for ``steps`` steps on ``real`` (N, C, H, W).

    Batches are random permutations of ``real`` (already on the device, in [-1, 1]); the
    latents and the permutations come from one CPU generator seeded by ``seed``. Every
    ``record_every`` steps (and at the last) one row is logged: the step's losses and logits
    and ``callback(step, G, D)``'s columns. Training stops early if a loss is not finite.
    """
    generator = torch.Generator().manual_seed(seed)
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    G.train()
    D.train()
    rows, order, cursor = [], None, len(real)
    for step in range(1, steps + 1):
        if cursor + batch_size > len(real):
            order, cursor = torch.randperm(len(real), generator=generator).to(real.device), 0
        batch, cursor = real[order[cursor:cursor + batch_size]], cursor + batch_size
        stats = train_step(G, D, opt_g, opt_d, batch, loss, generator)
        finite = math.isfinite(stats["d_loss"]) and math.isfinite(stats["g_loss"])
        if step % record_every == 0 or step == steps or not finite:
            row = {"step": step, **stats}
            if callback is not None and finite:
                row.update(callback(step, G, D))
            rows.append(row)
        if not finite:
            break
    return pd.DataFrame(rows)


# -- Fréchet distance ---------------------------------------------------------------------------


def gaussian_statistics(features: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, d) features, in float64."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().double().numpy()
    features = np.asarray(features, dtype=np.float64)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance_from_statistics(mu_a: ArrayLike, sigma_a: ArrayLike, mu_b: ArrayLike,
                                     sigma_b: ArrayLike) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    tr (S_a S_b)^(1/2) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2), which has the same spectrum as S_a S_b;
    this avoids the complex round-off of a general matrix square root.
    """
    mu_a, mu_b = np.asarray(mu_a, dtype=np.float64), np.asarray(mu_b, dtype=np.float64)
    sigma_a, sigma_b = np.atleast_2d(sigma_a).astype(np.float64), np.atleast_2d(sigma_b).astype(np.float64)
    root_a = _psd_sqrt(sigma_a)
    cross = np.linalg.eigvalsh(root_a @ sigma_b @ root_a)
    trace_sqrt = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * trace_sqrt)


def frechet_distance(features_a: ArrayLike | torch.Tensor, features_b: ArrayLike | torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two (N, d) feature sets."""
    return frechet_distance_from_statistics(*gaussian_statistics(features_a), *gaussian_statistics(features_b))
