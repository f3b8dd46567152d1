"""Classifier heads and feature treatments of the unhinged-loss paper, for any companion model.

* :class:`Head` runs ``classifier(t(features(x)))`` and keeps the raw features of its last
  forward pass (``last_features``) for the losses below. Build one with

  - :func:`learned`: the model's own trainable classifier (cross-entropy, or the plain unhinged
    loss, whose norms blow up: the paper's Fig. 19);
  - :func:`pal`: prototype-anchored learning, the classifier fixed to a scaled simplex ETF
    (``W^T W = s^2 (C/(C-1) I - 11^T/(C-1))``, no bias, ``requires_grad=False``, Sec. 4.1);
  - :func:`pal` with ``normalize=True`` (FNPAL): logits ``W h/||h||`` (Zhou et al. 2022c).

  ``whole=True`` uses the model's complete output as the features (for a
  ``companion.models.mlp`` whose last layer should have no activation); otherwise
  ``model.features`` (e.g. ``resnet18(final_relu=False)``, the paper's "ReLU before the
  classifier removed"); the model's own classifier is then unused (it gets no gradient).
* :func:`variant` builds (head, training loss, evaluation loss) for the paper's named variants
  and :func:`prototype_stats` summarizes a classifier's prototypes (its Fig. 19).
* :class:`HeadLoss` wraps a companion loss with the two feature treatments: explicit feature
  regularization (EFR, Sec. 4.2: ``+ lam * sum_batch ||h||^2``, a sum over the batch as the
  paper writes it) and the rescaled learning rate (RLR, Sec. 4.3, footnote 15: each sample's
  loss times ``stop_grad(||h_i||)``, which scales that sample's step by its feature norm).

A :class:`HeadLoss` reads the features of the forward pass just before it, so it must only be
called on logits of that pass: give ``companion.train.fit`` a plain ``eval_loss`` for its
evaluation sets (a mismatch raises).
"""

from __future__ import annotations

import torch
from torch import nn

from . import losses as losses_module
from .metrics import simplex_etf
from .models import last_layer

__all__ = ["Head", "learned", "pal", "HeadLoss", "variant", "prototype_stats"]


class _Features(nn.Module):
    """A model's ``features`` (or, with ``whole``, its whole forward) as a module."""

    def __init__(self, model: nn.Module, whole: bool):
        super().__init__()
        self.model, self.whole = model, whole

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.whole else self.model.features(x)


class Head(nn.Module):
    """``forward(x) = classifier(h / ||h|| if normalize else h)`` with ``h = body(x)``.

    ``features(x)`` returns the raw h, ``classifier`` the last linear layer (the companion's
    model interface), ``last_features`` the raw h of the latest forward pass (with its graph).
    """

    def __init__(self, body: nn.Module, classifier: nn.Linear, normalize: bool = False):
        super().__init__()
        self.body, self.classifier, self.normalize = body, classifier, normalize
        self.last_features: torch.Tensor | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        self.last_features = h
        if self.normalize:
            h = h / torch.linalg.vector_norm(h.float(), dim=1, keepdim=True).clamp_min(1e-12).to(h.dtype)
        return last_layer(self.classifier, h)  # float32 under autocast too


def learned(model: nn.Module, num_classes: int | None = None, *, whole: bool = False) -> Head:
    """A trainable linear classifier recording its features: the model's own one, or with
    ``whole=True`` a new ``nn.Linear(model.classifier.out_features, num_classes)`` on the model's output."""
    if not whole:
        return Head(_Features(model, whole=False), model.classifier)
    if num_classes is None:
        raise ValueError("learned(..., whole=True) needs num_classes: the model's output is the feature")
    reference = next(model.parameters())
    classifier = nn.Linear(model.classifier.out_features, num_classes).to(device=reference.device, dtype=reference.dtype)
    return Head(_Features(model, whole=True), classifier)


def pal(model: nn.Module, num_classes: int | None = None, *, scale: float = 1.0, normalize: bool = False,
        seed: int | None = 0, whole: bool = False) -> Head:
    """Prototype-anchored head: a frozen ``scale`` x simplex ETF (``seed`` rotates it; None: the
    first coordinates), no bias; ``normalize=True`` gives FNPAL.

    The feature dimension is ``model.classifier.in_features`` (``out_features`` with ``whole``);
    ``num_classes`` defaults to the model classifier's ``out_features`` (required with ``whole``).
    """
    if whole:
        if num_classes is None:
            raise ValueError("pal(..., whole=True) needs num_classes: the model's output is the feature")
        dim = model.classifier.out_features
    else:
        dim = model.classifier.in_features
        num_classes = model.classifier.out_features if num_classes is None else num_classes
    reference = next(model.parameters())
    classifier = nn.Linear(dim, num_classes, bias=False).to(device=reference.device, dtype=reference.dtype)
    with torch.no_grad():
        etf = simplex_etf(num_classes, dim, seed=seed, dtype=torch.float64)
        classifier.weight.copy_(scale * etf.to(classifier.weight.dtype))
    classifier.weight.requires_grad_(False)
    return Head(_Features(model, whole=whole), classifier, normalize=normalize)


class HeadLoss:
    """``mean_i(c_i * l_i) + feature_penalty * sum_i ||h_i||^2`` with ``c_i = ||h_i||`` (detached)
    when ``rescale`` (RLR), else 1; ``l_i`` the per-sample companion loss ``base``."""

    def __init__(self, base: str | losses_module.Loss, head: Head, *, feature_penalty: float = 0.0,
                 rescale: bool = False, **params):
        self.base = losses_module.get(base, reduction="none", **params) if isinstance(base, str) else base
        if feature_penalty < 0:
            raise ValueError(f"feature_penalty must be >= 0, got {feature_penalty}")
        self.head, self.feature_penalty, self.rescale = head, float(feature_penalty), bool(rescale)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 class_weights: torch.Tensor | None = None) -> torch.Tensor:
        h = self.head.last_features
        if h is None or h.shape[0] != logits.shape[0]:
            raise ValueError("HeadLoss needs the features of the forward pass that made these logits; "
                             "pass a plain eval_loss to companion.train.fit for evaluation sets")
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        per_sample = self.base.per_sample(logits, targets.long())
        if class_weights is not None:
            per_sample = per_sample * class_weights.to(per_sample)[targets.long()]
        norms_sq = h.float().pow(2).sum(dim=1) if h.dtype in (torch.float16, torch.bfloat16) else h.pow(2).sum(dim=1)
        if self.rescale:
            per_sample = per_sample * norms_sq.detach().sqrt()
        value = per_sample.mean()
        if self.feature_penalty:
            value = value + self.feature_penalty * norms_sq.sum()
        return value

    def __repr__(self) -> str:
        return f"HeadLoss({self.base!r}, feature_penalty={self.feature_penalty}, rescale={self.rescale})"


KINDS = ("learned", "pal", "fnpal")


def variant(model: nn.Module, kind: str, loss: str = "unhinged", *, num_classes: int | None = None,
            scale: float = 1.0, feature_penalty: float = 0.0, rescale: bool = False, whole: bool = False,
            seed: int | None = 0, **loss_params) -> tuple[Head, HeadLoss, losses_module.Loss]:
    """(head, training loss, plain evaluation loss) for one of the paper's variants.

    ``kind``: ``learned`` (the model's or a new trainable classifier), ``pal`` (frozen ETF of norm
    ``scale``) or ``fnpal`` (the same on normalized features); ``feature_penalty`` is EFR's lambda
    and ``rescale`` turns on RLR. E.g. the paper's UL*(PAL) is ``variant(m, "pal", feature_penalty=lam)``
    and UL(FNPAL)+RLR is ``variant(m, "fnpal", scale=10, rescale=True)``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "learned":
        head = learned(model, num_classes, whole=whole)
    else:
        head = pal(model, num_classes, scale=scale, normalize=kind == "fnpal", seed=seed, whole=whole)
    objective = HeadLoss(loss, head, feature_penalty=feature_penalty, rescale=rescale, **loss_params)
    return head, objective, losses_module.get(loss, **loss_params)


def prototype_stats(weight: torch.Tensor) -> dict[str, float]:
    """Fig. 19's prototype diagnostics of a (C, d) classifier: ``max_norm / min_norm``,
    ``min_norm`` and ``min_angle`` (degrees, arccos of the largest pairwise cosine)."""
    W = weight.detach().double()
    norms = torch.linalg.vector_norm(W, dim=1)
    unit = W / norms[:, None].clamp_min(1e-300)
    cos = unit @ unit.T
    cos.fill_diagonal_(-1.0)
    return {"norm_ratio": float(norms.max() / norms.min()), "min_norm": float(norms.min()),
            "min_angle": float(torch.rad2deg(torch.arccos(cos.max().clamp(-1.0, 1.0))))}
