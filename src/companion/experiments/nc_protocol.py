"""A classifier trained with one loss under the official protocol of the neural-collapse loss paper.

The runs of Zhou et al., *Are All Losses Created Equal: A Neural Collapse Perspective* (NeurIPS
2022), as its official code trains them (github.com/jinxinzhou/nc_loss, ``train.py``): SGD with
momentum 0.9, weight decay on every parameter, the learning rate divided by 10 at 3/7 and 5/7 of
the epochs, gradient clipping at norm 2 (it keeps MSE with target 15 e_y stable), random crop +
flip on images; LS alpha 0.1, FL gamma 3 (the code's ``--gamma``), MSE ``(1/K)||z - M e_y||^2``.
One :class:`Config` is one network and one loss; :func:`run` trains it and returns its row.

Models (``arch``): ``mlp`` (two hidden layers of ``round(hidden * width)`` units with BatchNorm,
the paper-style CPU stand-in on scikit-learn's digits), ``resnet18`` and ``wide_resnet50``
(``companion.models``, CIFAR stems, width multiplier ``width``). Data: ``digits`` or an image set
(``cifar10``, ``cifar100``; uint8 on the device, normalized per batch, GPU-side augmentation).

What a run measures, as the notebooks ``nc_losses/05`` and ``06`` need it:

* ``nc_every > 0``: the NC metrics (``companion.metrics.neural_collapse``) of a fixed
  **un-augmented** subset of the training set (``nc_per_class`` per class; the official code
  measures them on augmented batches) and its accuracy, at initialization (epoch 0), every
  ``nc_every`` epochs and at the last;
* ``val_fraction > 0``: a hold-out of the training set (a permutation seeded by ``val_seed``),
  evaluated every ``eval_every`` epochs with the test set; the row gives the test accuracy at the
  epoch of best validation accuracy (the paper's checkpoint rule, §4).

``seed`` seeds the initialization (``torch.manual_seed`` right before the model is built, so every
loss of a seed starts from the same weights), the batch order and the augmentation draws;
``data_seed`` the subsets. Map over a grid with ``companion.runs.map(run, configs)``; the
initialization and the augmentation draw from torch's global generator, so runs go one after
another (no ``workers`` side by side).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .. import data as data_module
from .. import losses, metrics, models, train
from ..repro import device as default_device
from . import check_choices

ARCHS = ("mlp", "resnet18", "wide_resnet50")
LOSSES = ("ce", "ls", "focal", "mse")


@dataclass(frozen=True)
class Config:
    """One network trained with one loss (every field a plain value: hashable, picklable)."""

    loss: str = "ce"                    # ce, ls, focal or mse
    ls_alpha: float = 0.1               # label smoothing
    focal_gamma: float = 3.0            # focal loss exponent
    mse_scale: float = 15.0             # MSE target scale M
    dataset: str = "digits"             # digits, cifar10 or cifar100
    arch: str = "mlp"                   # mlp, resnet18 or wide_resnet50
    width: float = 1.0                  # width multiplier (mlp: of ``hidden``)
    hidden: int = 128                   # mlp: hidden units at width 1
    train_per_class: int | None = None  # training examples per class (None: the whole split)
    n_test: int | None = None           # test examples (None: the whole split)
    val_fraction: float = 0.0           # share of the training set held out for checkpoint selection
    val_seed: int = 1                   # the permutation that picks the hold-out
    nc_per_class: int | None = None     # NC set: un-augmented training examples per class (None: all)
    nc_every: int = 0                   # epochs between NC measurements (0: none)
    epochs: int = 40
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4          # on every parameter, as the official code
    lr_drops: tuple[float, ...] = (3 / 7, 5 / 7)  # fractions of the epochs where the lr is divided by 10
    clip_grad_norm: float | None = 2.0
    augment: bool = False               # random crop + flip (images only)
    eval_every: int = 1                 # epochs between test (and validation) evaluations, and the last
    seed: int = 0                       # initialization, batch order, augmentation
    data_seed: int = 0                  # subsets

    def __post_init__(self) -> None:
        check_choices(self, arch=ARCHS, loss=LOSSES)
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    @property
    def loss_params(self) -> dict[str, float]:
        return {"ce": {}, "ls": {"alpha": self.ls_alpha}, "focal": {"gamma": self.focal_gamma},
                "mse": {"scale": self.mse_scale}}[self.loss]

    @property
    def milestones(self) -> tuple[int, ...]:
        """The epochs after which the learning rate drops (``int(f * epochs)``, as train.py)."""
        return tuple(int(f * self.epochs) for f in self.lr_drops)


@lru_cache(maxsize=6)
def _split(dataset: str, split: str, n: int | None, per_class: int | None, seed: int, where: str):
    return data_module.load(dataset, split, n=n, per_class=per_class, seed=seed, device=where)


def build(config: Config, in_features: int, num_classes: int) -> models.Classifier:
    """The network of ``config``, initialized from ``torch.manual_seed(config.seed)``."""
    torch.manual_seed(config.seed)
    if config.arch == "mlp":
        width = max(1, round(config.hidden * config.width))
        return models.mlp(in_features, [width] * 2, num_classes, batchnorm=True)
    if config.arch == "resnet18":
        return models.resnet18(num_classes, width=config.width)
    return models.wide_resnet50(num_classes, width=config.width)


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def run(config: Config) -> dict[str, Any]:
    """Train the network of ``config`` and return its row (plain Python values only).

    Keys: ``config`` (the fields), ``history`` (one dict per logged epoch, epoch 0 first when NC
    is measured: ``epoch``, ``train_loss``, ``train_acc``, ``test_acc``, ``val_acc`` with a
    hold-out, and with ``nc_every`` the NC metrics ``nc1``, ``nc2_w``, ``nc2_h``, ``nc3``,
    ``nc4``, ``wmu_b`` and ``nc_set_acc``), ``diverged_epoch`` (None if the training loss stayed
    finite), ``seconds`` (training time, evaluations excluded), ``feature_dim``,
    ``num_classes``, ``parameters``, the sizes ``train_size``, ``val_size``, ``test_size``,
    ``nc_size``, and with a hold-out ``best_epoch`` and ``best_val_test_acc`` (test accuracy at
    the epoch of best validation accuracy, the first on ties; NaN for a diverged run).
    """
    where = str(default_device())
    full = _split(config.dataset, "train", None, config.train_per_class, config.data_seed, where)
    test_set = _split(config.dataset, "test", config.n_test, None, config.data_seed, where)
    x, y = full.x, full.y
    x_val = y_val = None
    if config.val_fraction > 0:
        order = torch.randperm(len(full), generator=torch.Generator().manual_seed(config.val_seed)).to(x.device)
        n_val = int(round(config.val_fraction * len(full)))
        x_val, y_val = x[order[:n_val]], y[order[:n_val]]
        x, y = x[order[n_val:]], y[order[n_val:]]
    images = config.dataset in data_module.IMAGE_DATASETS
    preprocess = (lambda xb: data_module.to_float(xb, config.dataset)) if images else None
    augmentation = data_module.augment if images and config.augment else None
    num_classes = full.num_classes

    x_nc = y_nc = None
    if config.nc_every:
        keep = data_module.subset_indices(y.cpu().numpy(), per_class=config.nc_per_class, seed=config.data_seed)
        nc_index = torch.as_tensor(np.sort(keep) if keep is not None else np.arange(len(y)), device=x.device)
        x_nc, y_nc = x[nc_index], y[nc_index]

    model = build(config, full.x[0].numel(), num_classes).to(x.device)

    def nc_columns(epoch: int, net: torch.nn.Module) -> dict[str, float]:
        features = train.extract_features(net, x_nc, preprocess=preprocess)
        logits = net.classifier(features)
        return {**metrics.neural_collapse(features, y_nc, net.classifier.weight, net.classifier.bias),
                "nc_set_acc": metrics.accuracy(logits, y_nc)}

    eval_sets = {"test": (test_set.x, test_set.y)}
    if x_val is not None:
        eval_sets = {"val": (x_val, y_val), **eval_sets}
    rows: list[dict[str, Any]] = []
    if config.nc_every:
        rows.append({"epoch": 0, **nc_columns(0, model),
                     "test_acc": train.evaluate(model, test_set.x, test_set.y, preprocess=preprocess)["acc"]})
    began = time.perf_counter()
    history = train.fit(
        model, losses.get(config.loss, **config.loss_params), (x, y), epochs=config.epochs,
        batch_size=config.batch_size, optimizer="sgd", lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay, schedule="step", milestones=config.milestones,
        clip_grad_norm=config.clip_grad_norm, augment=augmentation, preprocess=preprocess,
        eval_sets=eval_sets, eval_every=config.eval_every,
        callback=nc_columns if config.nc_every else None, callback_every=config.nc_every or 1,
        progress=False, seed=config.seed)
    seconds = time.perf_counter() - began
    rows += [{k: _plain(v) for k, v in row.items()} for row in history.to_dict("records")]
    diverged = history.attrs["diverged_epoch"]
    row: dict[str, Any] = {
        "config": asdict(config), "history": rows, "diverged_epoch": diverged, "seconds": seconds,
        "feature_dim": model.classifier.in_features, "num_classes": num_classes,
        "parameters": models.count_parameters(model), "train_size": len(y),
        "val_size": 0 if y_val is None else len(y_val), "test_size": len(test_set),
        "nc_size": 0 if y_nc is None else len(y_nc),
    }
    if x_val is not None:
        if diverged is None and "val_acc" in history:
            best = history.loc[history["val_acc"].idxmax()]
            row.update(best_epoch=int(best["epoch"]), best_val_test_acc=float(best["test_acc"]))
        else:
            row.update(best_epoch=None, best_val_test_acc=math.nan)
    return row
