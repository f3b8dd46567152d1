"""A small DCGAN trained with one adversarial loss, scored by a Fréchet distance.

The stand-in of ``rooted_loss/07`` for the paper's StyleGAN2-ADA experiment (the official patch
``StyleGAN2-ADA-RLO/loss.py`` of github.com/ellenzhuwang/rooted_loss replaces every softplus of the
adversarial losses by the binary rooted loss with k = 2): the same :mod:`companion.gan` DCGAN,
optimizer (Adam, betas (0.5, 0.999)) and seeds for every loss; only the adversarial loss
(``logistic`` = softplus, or ``rooted``) differs. Runs of two losses with the same ``seed`` start
from the same networks and see the same batches and latents (a paired comparison).

Quality is the Fréchet distance (the formula of FID) between Gaussian fits of the penultimate
features of generated and real test images, where the features come from a classifier the
companion trains itself (:func:`reference`: an MLP 64-128-10 on digits, a width-0.5 ResNet-18
on image sets; not Inception), so the numbers are comparable only within a run of this recipe.
:func:`reference` also gives the floor set by sampling (real training against real test
images). It is cached per process, so the runs of one grid share one classifier.

Map over a grid with ``companion.runs.map(run, configs)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .. import data as data_module
from .. import gan, losses, models, train
from ..repro import device as default_device

#: the latent seed of every Fréchet-distance evaluation (the same samples at every step)
FD_LATENT_SEED = 10_000


@dataclass(frozen=True)
class Config:
    """One GAN trained with one adversarial loss (every field a plain value)."""

    loss: str = "logistic"              # logistic (softplus) or rooted
    k: float = 2.0                      # root order of the rooted adversarial loss (the official patch: 2)
    dataset: str = "digits"             # digits or an image set (cifar10, ...)
    steps: int = 400                    # GAN steps (one D and one G update each)
    batch_size: int = 64
    lr: float = 1e-3                    # Adam learning rate of both networks
    latent_dim: int = 16
    width: int = 16                     # DCGAN channel width
    record_every: int = 100             # steps between Fréchet distances (and the last)
    fd_samples: int | None = None       # generated images per Fréchet distance (None: as many as real test images)
    n_train: int | None = None          # training subset (None: the whole split)
    n_test: int | None = None           # real test images the distance compares with (None: the whole split)
    classifier_epochs: int = 20         # epochs of the feature classifier
    samples: int = 36                   # generated images returned for a figure
    seed: int = 0                       # GAN initialization, batches, latents
    data_seed: int = 0                  # subsets and the feature classifier


@dataclass
class Reference:
    """The real images in [-1, 1], the feature map and the distances every run compares with."""

    real_train: torch.Tensor
    real_test: torch.Tensor
    features: Callable[[torch.Tensor], torch.Tensor]
    test_features: Any
    n_fd: int
    floor: float
    classifier_acc: float
    source: str


@lru_cache(maxsize=2)
def reference(dataset: str, n_train: int | None, n_test: int | None, fd_samples: int | None,
              classifier_epochs: int, data_seed: int, where: str | None = None) -> Reference:
    """The data, the companion's own feature classifier (trained from ``torch.manual_seed
    (data_seed)``) and the real-image floor FD(real train, real test), for images in [-1, 1]."""
    where = where or str(default_device())
    train_set = data_module.load(dataset, "train", n=n_train, seed=data_seed, device=where)
    test_set = data_module.load(dataset, "test", n=n_test, seed=data_seed, device=where)
    torch.manual_seed(data_seed)
    if train_set.x.dtype == torch.uint8:  # uint8 (N, C, H, W) -> [-1, 1]
        to_gan = lambda x: x.float() / 127.5 - 1.0  # noqa: E731
        classifier_input = lambda g: data_module.to_float(  # noqa: E731
            ((g + 1) * 127.5).round().clamp(0, 255).to(torch.uint8), dataset)
        classifier = models.resnet18(train_set.num_classes, width=0.5)
        options = dict(batch_size=512, optimizer="adam", lr=1e-3, schedule="cosine", augment=data_module.augment,
                       preprocess=lambda x: data_module.to_float(x, dataset))
    else:  # digits: float (N, 64) in [0, 1] -> (N, 1, 8, 8) in [-1, 1]
        to_gan = lambda x: x.view(-1, 1, 8, 8) * 2.0 - 1.0  # noqa: E731
        classifier_input = lambda g: ((g.flatten(1) + 1) / 2).clamp(0, 1)  # noqa: E731
        classifier = models.mlp(64, 128, train_set.num_classes)
        options = dict(batch_size=64, optimizer="adam", lr=3e-3)
    train.fit(classifier, losses.get("ce"), train_set, epochs=classifier_epochs, progress=False, seed=data_seed,
              **options)
    real_train, real_test = to_gan(train_set.x), to_gan(test_set.x)

    def features(generated: torch.Tensor) -> torch.Tensor:
        """Penultimate features of the companion's own classifier, for images in [-1, 1]."""
        return train.extract_features(classifier, classifier_input(generated))

    n_fd = min(fd_samples or len(real_test), len(real_train))
    test_features = features(real_test)
    return Reference(real_train, real_test, features, test_features, n_fd,
                     gan.frechet_distance(features(real_train[:n_fd]), test_features),
                     train.evaluate(classifier, classifier_input(real_test), test_set.y)["acc"], train_set.source)


def reference_of(config: Config) -> Reference:
    """The :func:`reference` a run of ``config`` compares with."""
    return reference(config.dataset, config.n_train, config.n_test, config.fd_samples, config.classifier_epochs,
                     config.data_seed)


def run(config: Config) -> dict[str, Any]:
    """Train the DCGAN of ``config`` and return its row (plain Python values only).

    Keys: ``config`` (the fields), ``initial_fd`` (the untrained generator's distance),
    ``trajectory`` (one dict per record: ``step``, ``fd``, and the step's ``d_loss``, ``g_loss``,
    ``d_real``, ``d_fake``), ``diverged`` (a loss became non-finite), ``samples`` (``samples``
    generated images in [-1, 1] as nested lists, latent seed 1), ``floor`` and ``seconds``.
    """
    ref = reference_of(config)
    device = ref.real_train.device
    channels, side = ref.real_train.shape[1], ref.real_train.shape[2]
    torch.manual_seed(config.seed)
    G = gan.Generator(config.latent_dim, side, channels, config.width).to(device)
    D = gan.Discriminator(side, channels, config.width).to(device)

    def distance(step: int, G: gan.Generator, D: gan.Discriminator) -> dict[str, float]:
        sample = G.sample(ref.n_fd, torch.Generator().manual_seed(FD_LATENT_SEED))
        return {"fd": gan.frechet_distance(ref.features(sample), ref.test_features)}

    initial = distance(0, G, D)["fd"]
    began = time.perf_counter()
    history = gan.fit(G, D, ref.real_train, gan.AdversarialLoss(config.loss, k=config.k), steps=config.steps,
                      batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                      record_every=config.record_every, callback=distance)
    seconds = time.perf_counter() - began
    trajectory = [{k: (v.item() if isinstance(v, (np.floating, np.integer)) else v) for k, v in row.items()}
                  for row in history.to_dict("records")]
    diverged = bool(len(history) and not np.isfinite(history[["d_loss", "g_loss"]].to_numpy()).all())
    samples = G.sample(config.samples, torch.Generator().manual_seed(1)).detach().cpu().float()
    return {"config": asdict(config), "initial_fd": float(initial), "trajectory": trajectory, "diverged": diverged,
            "samples": samples.tolist(), "floor": float(ref.floor), "seconds": seconds}
