"""A classifier trained by SGD with any loss of the zoo, under one protocol for every loss.

The runs of ``zoo/02_networks_all_losses`` (every loss of the four papers on one protocol) and of
``dynamical_loss/04_generalization`` (cross-entropy against the dynamical loss, constant and cosine
learning rates): one :class:`Config` is one network trained with one loss, and :func:`run` returns
its standard row.

Losses (``loss``): ``ce``, ``ls`` (``ls_alpha``), ``focal`` (``focal_gamma``), ``mse``
(``mse_scale``, the NC paper's code), ``rooted`` (convex k p_y^(-1/k), ``rooted_k``),
``rooted_gce`` (the rooted-loss code's m(1 - p_y^(1/k)), ``gce_k``, ``gce_m``), ``unhinged``
(gamma = 1/(K-1), the network's learned classifier), ``unhinged_pal`` (the same with
``companion.heads.pal``: a frozen simplex-ETF classifier, prototype-anchored learning) and
``dynamical`` (cross-entropy weighted by ``companion.losses.DynamicalWeights`` with amplitude
``amplitude``; the last period plain). Its period: ``period_epochs`` epochs, or with
``period_epochs=None`` the zoo's protocol, K + 1 equal periods over the run (each class emphasized
once, then a plain period; ``epochs`` must then be a multiple of K + 1 epochs' worth of steps).

Models (``arch``): ``mlp`` (hidden widths ``hidden``), ``myrtle`` (Myrtle5 of Shankar et al.
2020 without BatchNorm, ``channels``) and ``resnet18`` (CIFAR stem, width multiplier ``width``).
Data: ``digits`` or an image set (uint8 on the device, normalized per batch, optional GPU-side
crop + flip), subsets by ``train_per_class`` or ``n_train`` (seeded by ``data_seed``).

Optimizer: SGD with ``momentum``, ``weight_decay`` on every trainable parameter, optional
gradient clipping, a ``constant`` or ``cosine`` schedule with ``warmup_epochs``. The test set
(its first ``n_curve`` examples) is evaluated every ``eval_every`` epochs and at the last, with the
plain loss. What the row holds: the history, divergence, the epoch at which the training batches
first reached ``target_train_acc``, the final training accuracy on the whole training set, the
test accuracy, loss and expected calibration error; with ``collapse`` the NC metrics and feature
norm on the training set; with ``hessian_samples`` the top Hessian eigenvalue of the plain
training cross-entropy on the first ``hessian_samples`` examples, in float64, for runs whose
training accuracy reached ``hessian_min_train_acc``.

Seeds: ``init_seed`` (default ``seed``) gives the initial weights exactly as
``torch.manual_seed(init_seed)`` right before the model is built would (so every loss of a seed
starts from the same network), drawn under a lock from a private copy of the generator state, so
runs may train side by side in threads (``companion.runs.map(..., workers=k)`` on CUDA); ``seed``
the batch order and the augmentation draws; ``data_seed`` the subsets.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

from .. import curvature, heads, losses, metrics, models, train
from .. import data as data_module
from ..repro import device as default_device
from . import check_choices

LOSSES = ("ce", "ls", "focal", "mse", "rooted", "rooted_gce", "unhinged", "unhinged_pal", "dynamical")
ARCHS = ("mlp", "myrtle", "resnet18")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Config:
    """One network trained with one loss (every field a plain value: hashable, picklable)."""

    loss: str = "ce"                    # one of LOSSES
    ls_alpha: float = 0.1               # label smoothing
    focal_gamma: float = 3.0            # focal loss exponent
    mse_scale: float = 15.0             # MSE target scale M
    rooted_k: float = 3.0               # k of the convex rooted loss
    gce_k: float = 3.0                  # k of the official code's rooted loss
    gce_m: float = 3.0                  # m of the official code's rooted loss
    amplitude: float = 10.0             # dynamical: A
    period_epochs: float | None = None  # dynamical: T in epochs (None: K + 1 equal periods over the run)
    dataset: str = "digits"             # digits or an image set (cifar10, ...)
    arch: str = "mlp"                   # mlp, myrtle or resnet18
    hidden: tuple[int, ...] = (128, 128)  # mlp: hidden widths
    channels: int = 64                  # myrtle: channels
    width: float = 1.0                  # resnet18: width multiplier
    train_per_class: int | None = None  # training examples per class (None: all, or n_train)
    n_train: int | None = None          # training subset size (None: all)
    n_test: int | None = None           # test subset size (None: all)
    n_curve: int | None = None          # test examples evaluated during training (None: all of n_test)
    epochs: int = 11
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 0.0           # on every trainable parameter
    clip_grad_norm: float | None = None
    schedule: str = "constant"          # constant or cosine
    warmup_epochs: float = 0.0
    augment: bool = False               # random crop + flip (images only)
    eval_every: int = 1                 # epochs between test evaluations (and the last)
    target_train_acc: float = 0.99      # training accuracy (epoch's batches) that counts as fitted
    collapse: bool = False              # NC metrics and feature norm on the training set
    hessian_samples: int = 0            # end-point lambda_max of the training CE (0: none)
    hessian_min_train_acc: float = 0.99  # ... only for runs that fit the training set this well
    seed: int = 0                       # batch order, augmentation (and the weights if no init_seed)
    init_seed: int | None = None        # initial weights (None: seed)
    data_seed: int = 0                  # subsets

    def __post_init__(self) -> None:
        check_choices(self, loss=LOSSES, arch=ARCHS, schedule=SCHEDULES)
        if self.train_per_class is not None and self.n_train is not None:
            raise ValueError("give train_per_class or n_train, not both")

    @property
    def plain_loss(self) -> str:
        """The loss without its schedule or head: what the test set is evaluated with."""
        return {"dynamical": "ce", "unhinged_pal": "unhinged"}.get(self.loss, self.loss)

    @property
    def loss_params(self) -> dict[str, float]:
        return {"ls": {"alpha": self.ls_alpha}, "focal": {"gamma": self.focal_gamma},
                "mse": {"scale": self.mse_scale}, "rooted": {"k": self.rooted_k},
                "rooted_gce": {"k": self.gce_k, "m": self.gce_m}}.get(self.plain_loss, {})


@lru_cache(maxsize=8)
def _split(dataset: str, split: str, n: int | None, per_class: int | None, seed: int, where: str):
    return data_module.load(dataset, split, n=n, per_class=per_class, seed=seed, device=where)


_BUILD_LOCK = threading.Lock()


def seeded(seed: int, build: Callable[[], Any]) -> Any:
    """``build()`` with torch's CPU generator in the state ``torch.manual_seed(seed)`` leaves it
    in, restored afterwards; under a lock, so threads that build at once do not interleave their
    draws (and no global seeding function is called: those refuse to run side by side)."""
    with _BUILD_LOCK:
        saved = torch.random.default_generator.get_state()
        torch.random.default_generator.set_state(torch.Generator().manual_seed(int(seed)).get_state())
        try:
            return build()
        finally:
            torch.random.default_generator.set_state(saved)


def build(config: Config, in_features: int, in_channels: int, num_classes: int) -> torch.nn.Module:
    """The network of ``config`` (with its frozen head for ``unhinged_pal``), on the CPU, from the
    generator state of ``torch.manual_seed(init_seed)``."""
    def make() -> torch.nn.Module:
        if config.arch == "mlp":
            network = models.mlp(in_features, list(config.hidden), num_classes)
        elif config.arch == "myrtle":
            network = models.myrtle(num_classes, channels=config.channels, batchnorm=False)
        else:
            network = models.resnet18(num_classes, width=config.width, in_channels=in_channels)
        if config.loss == "unhinged_pal":
            return heads.pal(network, seed=config.seed)
        return network

    return seeded(config.seed if config.init_seed is None else config.init_seed, make)


def training_loss(config: Config, network: torch.nn.Module, num_classes: int, total_steps: int,
                  steps_per_epoch: int) -> Any:
    """The loss :func:`run` trains ``network`` with (a schedule or a head where the loss has one)."""
    if config.loss == "unhinged_pal":
        return heads.HeadLoss("unhinged", network)
    if config.loss == "dynamical":
        if config.period_epochs is None:
            if total_steps % (num_classes + 1):
                raise ValueError(f"the zoo's dynamical protocol needs total steps ({total_steps}) divisible "
                                 f"by {num_classes + 1} (one period per class and a plain one)")
            period = total_steps // (num_classes + 1) - 1   # T: a period lasts T + 1 steps
        else:
            period = max(1, round(config.period_epochs * steps_per_epoch))
        schedule = losses.DynamicalWeights(num_classes, amplitude=config.amplitude, period=period,
                                           total_steps=total_steps)
        return losses.DynamicalLoss(losses.get("ce"), schedule)
    return losses.get(config.loss, **config.loss_params)


def end_point_sharpness(network: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                        preprocess: Callable[[torch.Tensor], torch.Tensor] | None) -> float:
    """lambda_max of the plain cross-entropy's Hessian at the network's weights, in float64
    (Lanczos on exact Hessian-vector products, ``companion.curvature``); the network is copied."""
    import copy

    model = copy.deepcopy(network).double().eval()
    inputs = (preprocess(x) if preprocess else x).double()
    ce = losses.get("ce")
    params = [p for p in model.parameters() if p.requires_grad]
    return float(curvature.top_hessian_eigenvalues(lambda: ce(model(inputs), y), params,
                                                   method="lanczos", tol=1e-3)[0])


def _plain(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def run(config: Config) -> dict[str, Any]:
    """Train the network of ``config`` and return its row (plain Python values only).

    Keys: ``config``; ``history`` (one dict per epoch: ``epoch``, ``train_loss``, ``train_acc``
    over the epoch's batches, ``seconds``, and where evaluated ``test_loss``, ``test_acc`` on the
    curve set); ``diverged_epoch`` (None if the training loss stayed finite); ``epochs_run``;
    ``seconds_per_epoch``; ``epochs_to_target`` (first epoch whose batches reached
    ``target_train_acc``, NaN if none); ``final_batch_acc``; ``train_size``, ``test_size``,
    ``num_classes``, ``parameters``, ``steps_per_epoch``; for a run that did not diverge,
    ``train_acc`` and ``train_loss`` (plain loss on the whole training set), ``test_acc``,
    ``test_loss`` and ``ece`` (15 bins) on the test set, with ``collapse`` ``nc1``, ``nc2_w``,
    ``nc2_h``, ``nc3`` and ``feature_norm``, with ``hessian_samples`` ``lambda_max`` (NaN for a run
    below ``hessian_min_train_acc``).
    """
    where = str(default_device())
    train_set = _split(config.dataset, "train", config.n_train, config.train_per_class, config.data_seed, where)
    test_set = _split(config.dataset, "test", config.n_test, None, config.data_seed, where)
    num_classes = train_set.num_classes
    images = config.dataset in data_module.IMAGE_DATASETS
    preprocess = (lambda xb: data_module.to_float(xb, config.dataset)) if images else None
    in_channels = train_set.x.shape[1] if images else 1
    network = build(config, train_set.x[0].numel(), in_channels, num_classes).to(train_set.x.device)
    steps_per_epoch = -(-len(train_set) // config.batch_size)
    loss = training_loss(config, network, num_classes, config.epochs * steps_per_epoch, steps_per_epoch)
    plain = losses.get(config.plain_loss, **config.loss_params)
    augmentation = None
    if images and config.augment:
        generator = torch.Generator(device=train_set.x.device).manual_seed(config.seed)
        augmentation = (lambda xb: data_module.augment(xb, generator=generator))  # noqa: E731
    curve = slice(None) if config.n_curve is None else slice(0, config.n_curve)
    began = time.perf_counter()
    history = train.fit(
        network, loss, (train_set.x, train_set.y), epochs=config.epochs, batch_size=config.batch_size,
        optimizer="sgd", lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
        schedule=config.schedule, warmup_epochs=config.warmup_epochs, clip_grad_norm=config.clip_grad_norm,
        augment=augmentation, preprocess=preprocess, eval_sets={"test": (test_set.x[curve], test_set.y[curve])},
        eval_every=config.eval_every, eval_loss=plain, progress=False, seed=config.seed)
    seconds = time.perf_counter() - began
    diverged = history.attrs["diverged_epoch"]
    epochs_run = int(history["epoch"].iloc[-1])
    reached = history.loc[history["train_acc"] >= config.target_train_acc, "epoch"]
    row: dict[str, Any] = {
        "config": asdict(config),
        "history": [{k: _plain(v) for k, v in r.items()} for r in history.to_dict("records")],
        "diverged_epoch": diverged, "epochs_run": epochs_run,
        "seconds_per_epoch": float(history["seconds"].iloc[-1] / max(epochs_run, 1)),
        "training_seconds": seconds,
        "epochs_to_target": float(reached.min()) if len(reached) else float("nan"),
        "final_batch_acc": float(history["train_acc"].iloc[-1]),
        "train_size": len(train_set), "test_size": len(test_set), "num_classes": num_classes,
        "parameters": models.count_parameters(network), "steps_per_epoch": steps_per_epoch,
    }
    if diverged is not None:
        return row
    on_train = train.evaluate(network, train_set.x, train_set.y, loss_fn=plain, preprocess=preprocess)
    logits = train.predict(network, test_set.x, preprocess=preprocess)
    with torch.no_grad():
        test_loss = float(plain(logits.float(), test_set.y.to(logits.device)))
    row.update(train_acc=on_train["acc"], train_loss=on_train["loss"],
               test_acc=metrics.accuracy(logits, test_set.y), test_loss=test_loss,
               ece=metrics.expected_calibration_error(logits, test_set.y))
    if config.collapse:
        features = train.extract_features(network, train_set.x, preprocess=preprocess)
        classifier = network.classifier
        row.update({k: v for k, v in metrics.neural_collapse(
            features, train_set.y, classifier.weight, getattr(classifier, "bias", None)).items()
            if k in ("nc1", "nc2_w", "nc2_h", "nc3")})
        row["feature_norm"] = float(features.double().norm(dim=1).mean())
    if config.hessian_samples:
        fits = on_train["acc"] >= config.hessian_min_train_acc
        row["lambda_max"] = (end_point_sharpness(network, train_set.x[: config.hessian_samples],
                                                 train_set.y[: config.hessian_samples], preprocess)
                             if fits else float("nan"))
    return row
