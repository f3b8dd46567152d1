"""A classifier trained with one loss under the official protocol of the rooted-loss paper.

The deep-network runs of Wang et al., *Accelerated Neural Network Training with Rooted Logistic
Objectives* (arXiv 2310.03890), as the official code trains them (github.com/ellenzhuwang/
rooted_loss, ``rlo-dnn/train.py``): Adam without weight decay (its ``--opt sgd`` branch is plain
SGD, no momentum), a cosine schedule over the run, batch 512, random crop (padding 4) + flip on
images (RandAugment only with its inverted ``--noaug`` flag, so not by default); the losses
``ce``, ``focal`` (gamma 3; the code's alpha = 0.25 only rescales the loss, which Adam ignores)
and the code's ``root_loss`` m(1 - p_y^(1/k)) (``rooted_gce``, k = m = 3), beside the convex
multi-class form k p_y^(-1/k) (``rooted``) of the paper's theory. One :class:`Config` is one
network and one loss; :func:`run` trains it and returns its row.

Models (``arch``): ``mlp`` (hidden widths ``hidden``; the FCN of the paper, and the CPU stand-in
on scikit-learn's digits), ``resnet18`` (``companion.models``, CIFAR stem, width multiplier
``width``) and ``vit`` (the code's ``vit_small``: patch 4, dim 512, depth 6, 8 heads, MLP 512,
dropout 0.1). Data: ``digits`` or an image set (uint8 on the device, normalized per batch,
GPU-side augmentation).

What a run measures, as ``rooted_loss/06`` and ``08`` need it: the training accuracy of every
epoch (over its batches, as trained) and the test accuracy every ``eval_every`` epochs and at
the last; with ``quantize_bits``, the test accuracy of round-to-nearest weight-quantized copies
(``companion.quantize``, per output channel and per tensor) and how peaked the weights are.

``seed`` seeds the initialization (``torch.manual_seed`` right before the model is built, so
every loss of a seed starts from the same weights), the batch order and the augmentation
draws; ``data_seed`` the subsets. Map over a grid with ``companion.runs.map(run, configs)``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .. import data as data_module
from .. import losses, models, quantize, train
from ..repro import device as default_device
from . import check_choices

ARCHS = ("mlp", "resnet18", "vit")
LOSSES = ("ce", "focal", "rooted", "rooted_gce")
SCHEMES = {"per-channel": True, "per-tensor": False}


@dataclass(frozen=True)
class Config:
    """One network trained with one loss (every field a plain value: hashable, picklable)."""

    loss: str = "ce"                    # ce, focal, rooted (convex) or rooted_gce (the official code's)
    focal_gamma: float = 3.0            # focal loss exponent (the code's gamma)
    rooted_k: float = 3.0               # k of the convex form
    gce_k: float = 3.0                  # k of the official code's form
    gce_m: float = 3.0                  # m of the official code's form
    dataset: str = "digits"             # digits, cifar10 or cifar100
    arch: str = "mlp"                   # mlp, resnet18 or vit
    hidden: tuple[int, ...] = (128,)    # mlp: hidden widths
    width: float = 1.0                  # resnet18: width multiplier
    n_train: int | None = None          # training subset (None: the whole split)
    n_test: int | None = None           # test subset (None: the whole split)
    epochs: int = 200
    batch_size: int = 512
    optimizer: str = "adam"             # adam or sgd (plain, as the code's sgd branch)
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    augment: bool = True                # random crop + flip (images only)
    eval_every: int = 1                 # epochs between test evaluations (and the last)
    quantize_bits: tuple[int, ...] = () # bit widths of the quantized copies (empty: none)
    seed: int = 0                       # initialization, batch order, augmentation
    data_seed: int = 0                  # subsets

    def __post_init__(self) -> None:
        check_choices(self, arch=ARCHS, loss=LOSSES)

    @property
    def loss_params(self) -> dict[str, float]:
        return {"ce": {}, "focal": {"gamma": self.focal_gamma}, "rooted": {"k": self.rooted_k},
                "rooted_gce": {"k": self.gce_k, "m": self.gce_m}}[self.loss]


@lru_cache(maxsize=6)
def _split(dataset: str, split: str, n: int | None, seed: int, where: str) -> data_module.Dataset:
    return data_module.load(dataset, split, n=n, seed=seed, device=where)


def build(config: Config, sample: torch.Tensor, num_classes: int) -> models.Classifier:
    """The network of ``config`` for inputs like ``sample`` (one example), initialized from
    ``torch.manual_seed(config.seed)``."""
    torch.manual_seed(config.seed)
    if config.arch == "mlp":
        return models.mlp(sample.numel(), list(config.hidden), num_classes)
    channels, side = sample.shape[0], sample.shape[-1]
    if config.arch == "resnet18":
        return models.resnet18(num_classes, width=config.width, in_channels=channels)
    return models.vit(num_classes, image_size=side, patch=4, dim=512, depth=6, heads=8, mlp_dim=512,
                      dropout=0.1, in_channels=channels)


def _weight_statistics(model: torch.nn.Module) -> dict[str, float]:
    """How peaked the quantized layers' weights are: the mean over layers of the mean over output
    channels of max|w| / rms(w) (the largest weight sets a channel's grid step), and the norm."""
    weights = [m.weight.detach().flatten(1).float() for m in model.modules() if isinstance(m, quantize.QUANTIZED_LAYERS)]
    peaks = [(w.abs().amax(1) / w.pow(2).mean(1).sqrt().clamp_min(1e-30)).mean().item() for w in weights]
    return {"max_over_rms": float(np.mean(peaks)),
            "weight_norm": float(torch.sqrt(sum(w.pow(2).sum() for w in weights)).item())}


def run(config: Config) -> dict[str, Any]:
    """Train the network of ``config`` and return its row (plain Python values only).

    Keys: ``config`` (the fields), ``history`` (one dict per evaluated epoch, every
    ``eval_every`` epochs and the last: ``epoch``, ``train_loss``, ``train_acc`` (over the
    epoch's batches), ``test_acc``, ``seconds`` (cumulative training time, evaluations
    excluded)), ``diverged_epoch`` (None if the training loss stayed
    finite), ``test_acc`` (at the end; NaN for a diverged run), ``seconds``, ``train_size``,
    ``test_size``; with ``quantize_bits`` also ``quantized`` (one dict per scheme and bit width:
    ``scheme``, ``bits``, ``acc``; empty for a diverged run) and the weight statistics
    ``max_over_rms`` and ``weight_norm``.
    """
    where = str(default_device())
    train_set = _split(config.dataset, "train", config.n_train, config.data_seed, where)
    test_set = _split(config.dataset, "test", config.n_test, config.data_seed, where)
    images = config.dataset in data_module.IMAGE_DATASETS
    preprocess = (lambda xb: data_module.to_float(xb, config.dataset)) if images else None
    augmentation = data_module.augment if images and config.augment else None
    model = build(config, train_set.x[0], train_set.num_classes).to(train_set.x.device)
    began = time.perf_counter()
    history = train.fit(
        model, losses.get(config.loss, **config.loss_params), train_set, epochs=config.epochs,
        batch_size=config.batch_size, optimizer=config.optimizer, lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay, schedule="cosine", augment=augmentation, preprocess=preprocess,
        eval_sets={"test": (test_set.x, test_set.y)}, eval_every=config.eval_every, eval_loss=losses.get("ce"),
        progress=False, seed=config.seed)
    seconds = time.perf_counter() - began
    diverged = history.attrs["diverged_epoch"]
    rows = [{k: (v.item() if isinstance(v, (np.floating, np.integer)) else v) for k, v in row.items()}
            for row in history.to_dict("records")]
    final = history.iloc[-1]
    row: dict[str, Any] = {
        "config": asdict(config), "history": rows, "diverged_epoch": diverged, "seconds": seconds,
        "test_acc": float("nan") if diverged is not None or "test_acc" not in history else float(final["test_acc"]),
        "train_size": len(train_set), "test_size": len(test_set),
    }
    if config.quantize_bits:
        quantized = []
        if diverged is None:
            for scheme, per_channel in SCHEMES.items():
                for bits in config.quantize_bits:
                    copy = quantize.quantize_model(model, bits, per_channel=per_channel)
                    acc = train.evaluate(copy, test_set.x, test_set.y, preprocess=preprocess)["acc"]
                    quantized.append({"scheme": scheme, "bits": bits, "acc": float(acc)})
        row.update(quantized=quantized, **_weight_statistics(model))
    return row
