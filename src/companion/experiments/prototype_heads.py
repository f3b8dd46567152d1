"""A network with a learned or prototype-anchored classifier head, trained with CE or the unhinged loss.

The runs of the unhinged-loss paper's practical sections (Zhou et al., JMLR 2023, Secs. 4.1-4.3,
App. C.2-C.4): one :class:`Config` is one network (``companion.heads``: a learned classifier,
PAL's frozen simplex ETF of norm ``scale``, or FNPAL on normalized features; explicit feature
regularization ``efr``; the rescaled learning rate ``rlr``) trained on one training set, and
:func:`run` returns its standard row: the per-epoch history, whether and when it diverged, the
final test accuracy, calibration (ECE, reliability bins), per-class accuracy, whether a frozen
head stayed a scaled simplex ETF, and, where ``ood`` is set, out-of-distribution detection with
three scores (max-softmax, energy, feature norm).

Two models, as in the notebooks ``unhinged/08``-``10``:

* ``dataset="digits"``: scikit-learn's digits with an MLP 64 -> ``hidden`` ReLU -> ``dim`` and no
  ReLU before the classifier (optionally BatchNorm in the hidden layer), always on the CPU (so a
  GPU machine gives the CPU's numbers);
* ``dataset="cifar10"``: ResNet-18 of width ``width`` with the ReLU before the classifier removed
  (``resnet18(final_relu=False)``), uint8 images on the device, GPU-side crop + flip.

Training sets can be subsets (``n_train`` / ``train_per_class``), restricted to the first
``classes`` labels (the in-distribution classes of a held-out-classes OOD split) and made
imbalanced (``imbalance`` = "exp" or "step" with ratio ``ratio``, ``companion.imbalance``); the
test set stays balanced. ``seed`` seeds the initialization, the head's ETF rotation and the
batch order; ``data_seed`` the subsets. Map over a grid with ``companion.runs.map(run, configs)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as data_module
from .. import heads, imbalance, metrics, models, ood, train
from ..repro import device as default_device
from ..runs import Resources

DATASETS = ("digits", "cifar10")
OOD_SETS = ("held-out", "svhn", "mnist")


@dataclass(frozen=True)
class Config:
    """One network, one training set, one loss (every field a plain value: hashable, picklable)."""

    loss: str = "ce"                # "ce" or "unhinged" (gamma = 1/(C-1), C the classes trained on)
    head: str = "learned"           # "learned", "pal" (frozen scaled simplex ETF) or "fnpal" (normalized features)
    scale: float = 1.0              # prototype norm of a pal / fnpal head
    efr: float = 0.0                # explicit feature regularization: + efr * sum over the batch of ||h||^2
    rlr: bool = False               # rescaled learning rate: each sample's step times ||h||
    dataset: str = "digits"         # "digits" (MLP) or "cifar10" (ResNet-18 without the final ReLU)
    hidden: int = 128               # digits MLP: hidden width
    dim: int = 32                   # digits MLP: feature dimension (the classifier's input)
    batchnorm: bool = False         # digits MLP: BatchNorm in the hidden layer
    width: float = 1.0              # cifar10: ResNet-18 width multiplier
    n_train: int | None = None      # training subset size (None: the whole split)
    train_per_class: int | None = None  # or per class (None: the whole split)
    n_test: int | None = None       # test subset size (None: the whole split)
    classes: int | None = None      # keep labels < classes only (train and test; None: all)
    imbalance: str | None = None    # "exp" (long tail) or "step", with ratio (None: as loaded)
    ratio: float = 1.0              # imbalance ratio rho = max n_c / min n_c
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"      # "constant" or "cosine" (companion.train.lr_schedule)
    augment: bool = False           # random crop + flip (images)
    eval_every: int = 1             # epochs between evaluations of the test set (and the last epoch)
    eval_train: bool = False        # also evaluate the plain loss on the whole training set
    feature_samples: int = 1000     # test points for the mean feature norm of the history
    ece_bins: int = 15
    ood: str | None = None          # "held-out" (labels >= classes), "svhn" or "mnist" (padded to 32x32x3)
    seed: int = 0                   # initialization, ETF rotation and batch order
    data_seed: int = 0              # subsets and the imbalanced draw

    @property
    def resources(self) -> Resources:
        """What a run asks a Ray cluster for: digits runs stay on a CPU, a ResNet takes a GPU."""
        return Resources(gpus=0.0) if self.dataset == "digits" else Resources(gpus=1.0)

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.head not in heads.KINDS:
            raise ValueError(f"head must be one of {heads.KINDS}, got {self.head!r}")
        if self.ood is not None and self.ood not in OOD_SETS:
            raise ValueError(f"ood must be one of {OOD_SETS} or None, got {self.ood!r}")
        if self.ood == "held-out" and self.classes is None:
            raise ValueError("ood='held-out' needs classes (the labels >= classes are the OOD set)")


@lru_cache(maxsize=4)
def _split(dataset: str, split: str, n: int | None, per_class: int | None, seed: int, where: str):
    return data_module.load(dataset, split, n=n, per_class=per_class, seed=seed, device=where)


@lru_cache(maxsize=2)
def _ood_images(name: str, where: str) -> tuple[torch.Tensor, str]:
    """(uint8 images, description) of an image OOD set; SVHN falls back to padded MNIST."""
    if name == "svhn":
        try:
            return data_module.load("svhn", "test", device=where).x, "SVHN test"
        except data_module.DatasetNotFoundError:
            name = "mnist"
    mnist = data_module.load("mnist", "test", device=where)
    padded = F.pad(mnist.x, (2, 2, 2, 2)).repeat(1, 3, 1, 1)  # uint8, normalized with CIFAR-10's statistics
    return padded, "MNIST test, padded to 32x32, 3 channels (stand-in for SVHN)"


def _model(config: Config, num_classes: int) -> tuple[torch.nn.Module, bool]:
    if config.dataset == "digits":  # 64 -> hidden ReLU -> dim, no ReLU after: the features
        return models.mlp(64, config.hidden, config.dim, batchnorm=config.batchnorm), True
    return models.resnet18(num_classes, width=config.width, final_relu=False), False


def _histogram(scores_id: torch.Tensor, scores_ood: torch.Tensor, bins: int = 40) -> dict[str, list[float]]:
    a, b = scores_id.double().cpu().numpy(), scores_ood.double().cpu().numpy()
    finite = np.concatenate([a, b])
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return {"edges": [], "id": [], "ood": []}
    edges = np.linspace(finite.min(), finite.max(), bins + 1)
    return {"edges": edges.tolist(), "id": np.histogram(a, edges)[0].tolist(), "ood": np.histogram(b, edges)[0].tolist()}


def _ece_bootstrap_se(logits: torch.Tensor, y: torch.Tensor, bins: int, resamples: int = 200) -> float:
    """Standard error of the ECE over the test set: its spread over bootstrap resamples of the
    test points (a fixed generator, so the same run gives the same number)."""
    probs = torch.softmax(logits.double(), dim=1)
    confidence, prediction = probs.max(dim=1)
    confidence = confidence.cpu().numpy()
    correct = (prediction == y.to(prediction.device)).double().cpu().numpy()
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)  # bin m covers ((m-1)/B, m/B]
    rng = np.random.default_rng(0)
    n, values = len(correct), []
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        gap = np.abs(np.bincount(index[pick], weights=correct[pick] - confidence[pick], minlength=bins))
        values.append(gap.sum() / n)
    return float(np.std(values, ddof=1))


def run(config: Config) -> dict[str, Any]:
    """Train the network of ``config`` and return its row (plain Python values only).

    Keys: ``config`` (the fields), ``history`` (one dict per logged epoch: ``epoch``,
    ``train_loss``, ``train_acc``, ``test_loss``, ``test_acc`` and ``train_eval_loss`` where
    evaluated, ``h_norm`` the mean feature norm on the test set, the prototype diagnostics of
    ``companion.heads.prototype_stats``), ``diverged_epoch`` (None if finite throughout),
    ``train_size``, ``test_size``, ``test_acc``, ``ece`` (and ``ece_se``, its bootstrap standard
    error over the test points), ``minority_acc`` (mean over the second
    half of the classes), ``per_class_acc``, ``calibration`` (the reliability table as lists),
    ``h_norm``, ``classifier_unchanged`` and ``etf_gram_error`` (max |W W^T - scale^2 G_ETF| /
    scale^2; None for a learned head), and with ``ood``: ``ood_name``, ``ood`` (score -> fpr95,
    auroc, aupr in %), ``ood_size`` and ``ood_histograms`` (score -> edges and counts). A diverged run has NaN
    for every final metric.
    """
    where = "cpu" if config.dataset == "digits" else str(default_device())  # the tiny MLP is launch-bound on a GPU
    train_set = _split(config.dataset, "train", config.n_train, config.train_per_class, config.data_seed, where)
    test_set = _split(config.dataset, "test", config.n_test, None, config.data_seed, where)
    x, y, x_test, y_test = train_set.x, train_set.y, test_set.x, test_set.y
    num_classes = train_set.num_classes
    x_ood = ood_name = None
    if config.classes is not None:
        keep, keep_test = y < config.classes, y_test < config.classes
        if config.ood == "held-out":
            x_ood, ood_name = x_test[~keep_test], f"{config.dataset} labels >= {config.classes} (held out)"
        x, y, x_test, y_test, num_classes = x[keep], y[keep], x_test[keep_test], y_test[keep_test], config.classes
    if config.imbalance is not None:
        index = torch.as_tensor(imbalance.imbalanced(y, num_classes, config.ratio, config.imbalance,
                                                     seed=config.data_seed), device=y.device)
        x, y = x[index], y[index]
    if config.ood in ("svhn", "mnist"):
        x_ood, ood_name = _ood_images(config.ood, where)
    images = config.dataset != "digits"
    preprocess = (lambda xb: data_module.to_float(xb, config.dataset)) if images else None

    torch.manual_seed(config.seed)
    model, whole = _model(config, num_classes)
    params = {"gamma": 1 / (num_classes - 1)} if config.loss == "unhinged" else {}
    head, objective, plain = heads.variant(model, config.head, config.loss, num_classes=num_classes,
                                           scale=config.scale, feature_penalty=config.efr, rescale=config.rlr,
                                           whole=whole, seed=config.seed, **params)
    head.to(where)
    initial_W = head.classifier.weight.detach().clone()
    probe = x_test[:config.feature_samples]

    def diagnostics(epoch: int, m: torch.nn.Module) -> dict[str, float]:
        features = train.extract_features(m, probe, preprocess=preprocess).float()
        return {"h_norm": float(features.norm(dim=1).mean()), **heads.prototype_stats(m.classifier.weight)}

    eval_sets = {"test": (x_test, y_test)}
    if config.eval_train:
        eval_sets["train_eval"] = (x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow on the way to NaN in the unstable variants
        history = train.fit(
            head, objective, (x, y), epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
            momentum=config.momentum, weight_decay=config.weight_decay, schedule=config.schedule,
            augment=data_module.augment if config.augment and images else None, preprocess=preprocess,
            eval_sets=eval_sets, eval_every=config.eval_every, eval_loss=plain, callback=diagnostics,
            callback_every=config.eval_every, progress=False, seed=config.seed)
    diverged = history.attrs["diverged_epoch"]
    row: dict[str, Any] = {
        "config": asdict(config), "history": history.to_dict("records"), "diverged_epoch": diverged,
        "train_size": len(y), "test_size": len(y_test),
    }
    final_W = head.classifier.weight.detach()
    if config.head == "learned":
        row["classifier_unchanged"], row["etf_gram_error"] = None, None
    else:
        etf = metrics.simplex_etf(num_classes).double()
        gram = final_W.double().cpu() @ final_W.double().cpu().T
        row["classifier_unchanged"] = bool(torch.equal(initial_W, final_W))
        row["etf_gram_error"] = float((gram - config.scale**2 * (etf @ etf.T)).abs().max() / config.scale**2)
    nan_metrics = {"test_acc": math.nan, "ece": math.nan, "ece_se": math.nan, "minority_acc": math.nan, "h_norm": math.nan,
                   "per_class_acc": [math.nan] * num_classes, "calibration": None,
                   **({"ood_name": ood_name, "ood_size": len(x_ood), "ood": None, "ood_histograms": None}
                      if config.ood else {})}
    if diverged is not None:
        return {**row, **nan_metrics}
    logits = train.predict(head, x_test, preprocess=preprocess).double()
    features = train.extract_features(head, x_test, preprocess=preprocess).double()
    if not torch.isfinite(logits).all():  # finite training loss, but the network overflowed since
        return {**row, **nan_metrics}
    per_class = metrics.per_class_accuracy(logits, y_test, num_classes)
    row.update({
        "test_acc": metrics.accuracy(logits, y_test),
        "ece": metrics.expected_calibration_error(logits, y_test, bins=config.ece_bins),
        "ece_se": _ece_bootstrap_se(logits, y_test, config.ece_bins),
        "minority_acc": float(per_class[num_classes // 2:].mean()),
        "per_class_acc": [float(a) for a in per_class],
        "calibration": metrics.calibration_bins(logits, y_test, bins=config.ece_bins).to_dict("list"),
        "h_norm": float(features.norm(dim=1).mean()),
    })
    if config.ood:
        logits_ood = train.predict(head, x_ood, preprocess=preprocess).double()
        features_ood = train.extract_features(head, x_ood, preprocess=preprocess).double()
        scores = {"softmax": (ood.max_softmax(logits), ood.max_softmax(logits_ood)),
                  "energy": (ood.energy(logits), ood.energy(logits_ood)),
                  "feature norm": (ood.feature_norm(features), ood.feature_norm(features_ood))}
        row["ood_name"], row["ood_size"] = ood_name, len(x_ood)
        row["ood"] = {name: {k: float(v) for k, v in ood.detection_metrics(s_id, s_ood).items()}
                      for name, (s_id, s_ood) in scores.items()}
        row["ood_histograms"] = {name: _histogram(s_id, s_ood) for name, (s_id, s_ood) in scores.items()}
    return row
