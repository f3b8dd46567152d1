"""The losses of the four papers behind one registry: ``get(name, **params)``.

Every loss is called as ``loss(logits, targets, class_weights=None)`` with logits of shape
(N, K) and integer targets (N,), and reduces with ``reduction="mean"`` (the mean over
samples, weights included: (1/N) sum_i w_{y_i} l_i), ``"sum"`` or ``"none"``. Losses are
computed in float32 (or float64) even under bf16 autocast, and in log space, so that no
probability underflows into a NaN.

========== =============================================== ==================================
name       per-sample loss                                 paper
========== =============================================== ==================================
ce         -log p_y                                        all
ls         -(1-a) log p_y - (a/K) sum_j log p_j            nc_losses (alpha, default 0.1)
focal      -(1-p_y)^g log p_y                              nc_losses (gamma, default 3)
mse        (1/K) ||z - M e_y||^2                           nc_losses (scale M; code uses 15)
unhinged   -z_y + g sum_{j!=y} z_j                         unhinged (gamma, default 1/(K-1))
rooted     k p_y^(-1/k)  (minus k if minus_k)              rooted_loss, convex form (k)
rooted_gce m (1 - p_y^(1/k))                               rooted_loss, official code (k, m)
========== =============================================== ==================================

``DynamicalWeights`` is the cyclic class-weight schedule of the dynamical-loss paper and
``DynamicalLoss`` applies it to any base loss.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    return per_sample


def _check_range(name: str, value: float, low: float, high: float = math.inf,
                 low_open: bool = False, high_open: bool = True) -> None:
    ok_low = value > low if low_open else value >= low
    ok_high = value < high if high_open else value <= high
    if not (ok_low and ok_high and math.isfinite(value)):
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lo}{low}, {high}{hi}, got {value}")


class Loss:
    """Base class: subclasses implement ``per_sample(logits, targets)``."""

    name = "loss"

    def __init__(self, reduction: str = "mean"):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def per_sample(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 class_weights: torch.Tensor | None = None) -> torch.Tensor:
        if logits.ndim != 2:
            raise ValueError(f"logits must be (N, K), got shape {tuple(logits.shape)}")
        if logits.dtype in (torch.float16, torch.bfloat16):
            logits = logits.float()
        targets = targets.long()
        values = self.per_sample(logits, targets)
        if class_weights is not None:
            values = values * class_weights.to(values)[targets]
        return _reduce(values, self.reduction)

    def params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "reduction"}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.params().items())
        return f"{self.name}({args})"


def _log_p_target(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(logits, dim=1).gather(1, targets[:, None])[:, 0]


class CrossEntropy(Loss):
    name = "ce"

    def per_sample(self, logits, targets):
        return -_log_p_target(logits, targets)


class LabelSmoothing(Loss):
    """Cross-entropy against (1-alpha) e_y + alpha/K, i.e. ``F.cross_entropy(label_smoothing=alpha)``."""

    name = "ls"

    def __init__(self, alpha: float = 0.1, reduction: str = "mean"):
        super().__init__(reduction)
        _check_range("alpha", alpha, 0.0, 1.0)
        self.alpha = float(alpha)

    def per_sample(self, logits, targets):
        log_p = F.log_softmax(logits, dim=1)
        nll = -log_p.gather(1, targets[:, None])[:, 0]
        return (1 - self.alpha) * nll - self.alpha * log_p.mean(dim=1)


class Focal(Loss):
    """-(1 - p_y)^gamma log p_y, as in the NC paper's code (no alpha balancing)."""

    name = "focal"

    def __init__(self, gamma: float = 3.0, reduction: str = "mean"):
        super().__init__(reduction)
        _check_range("gamma", gamma, 0.0)
        self.gamma = float(gamma)

    def per_sample(self, logits, targets):
        log_p = _log_p_target(logits, targets)
        # 1 - p_y computed as -expm1(log p_y): exact near p_y = 1, where the weight matters.
        # Clamped at the smallest normal number, not 0: for gamma < 1 the derivative of
        # x^gamma is infinite at x = 0 and would turn the (zero) gradient into 0 * inf = NaN.
        tiny = torch.finfo(log_p.dtype).tiny
        return -((-torch.expm1(log_p)).clamp_min(tiny) ** self.gamma) * log_p


class MeanSquared(Loss):
    """(1/K) ||z - scale * e_y||^2: ``F.mse_loss(z, scale * one_hot)`` per sample (NC code: 15)."""

    name = "mse"

    def __init__(self, scale: float = 1.0, reduction: str = "mean"):
        super().__init__(reduction)
        _check_range("scale", scale, 0.0, low_open=True)
        self.scale = float(scale)

    def per_sample(self, logits, targets):
        target = self.scale * F.one_hot(targets, logits.shape[1]).to(logits)
        return (logits - target).pow(2).mean(dim=1)


class Unhinged(Loss):
    """-z_y + gamma * sum_{j != y} z_j (eq. 1 of the unhinged paper); gamma=None -> 1/(K-1).

    Linear in the logits and unbounded below: it needs a constraint or weight decay.
    """

    name = "unhinged"

    def __init__(self, gamma: float | None = None, reduction: str = "mean"):
        super().__init__(reduction)
        if gamma is not None:
            _check_range("gamma", gamma, 0.0, low_open=True)
        self.gamma = None if gamma is None else float(gamma)

    def per_sample(self, logits, targets):
        num_classes = logits.shape[1]
        gamma = 1.0 / (num_classes - 1) if self.gamma is None else self.gamma
        target_logit = logits.gather(1, targets[:, None])[:, 0]
        return -(1 + gamma) * target_logit + gamma * logits.sum(dim=1)


class Rooted(Loss):
    """k * p_y^(-1/k): the multi-class analogue of the convex rooted logistic objective.

    Equals k * (1 + e^(-z))^(1/k) with z = z_y - z_other for K = 2. ``minus_k`` subtracts k,
    which makes it tend to cross-entropy as k grows. log p_y is clamped at -80 k so that
    hopeless samples give a large finite loss instead of inf.
    """

    name = "rooted"

    def __init__(self, k: float = 3.0, minus_k: bool = False, reduction: str = "mean"):
        super().__init__(reduction)
        _check_range("k", k, 0.0, low_open=True)
        self.k = float(k)
        self.minus_k = bool(minus_k)

    def per_sample(self, logits, targets):
        log_p = _log_p_target(logits, targets).clamp_min(-80.0 * self.k)
        value = self.k * torch.exp(-log_p / self.k)
        return value - self.k if self.minus_k else value


class RootedGCE(Loss):
    """m * (1 - p_y^(1/k)): the official rooted-loss DNN code (generalized cross-entropy, q = 1/k).

    Bounded by m and non-convex in the logits; with m = k it tends to cross-entropy as k grows.
    """

    name = "rooted_gce"

    def __init__(self, k: float = 3.0, m: float = 3.0, reduction: str = "mean"):
        super().__init__(reduction)
        _check_range("k", k, 0.0, low_open=True)
        _check_range("m", m, 0.0, low_open=True)
        self.k, self.m = float(k), float(m)

    def per_sample(self, logits, targets):
        log_p = _log_p_target(logits, targets)
        return -self.m * torch.expm1(log_p / self.k)


REGISTRY: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (CrossEntropy, LabelSmoothing, Focal, MeanSquared, Unhinged, Rooted, RootedGCE)
}


def get(name: str, **params: Any) -> Loss:
    """The loss ``name`` with ``params`` (see the table above); clear errors for typos."""
    if name not in REGISTRY:
        hint = difflib.get_close_matches(name, list(REGISTRY), n=1)
        maybe = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown loss {name!r}.{maybe} Known: {', '.join(REGISTRY)}")
    cls = REGISTRY[name]
    try:
        return cls(**params)
    except TypeError as exc:
        import inspect

        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        raise ValueError(f"loss {name!r} accepts {accepted}, got {sorted(params)}") from exc


# -- the dynamical loss ---------------------------------------------------------------------


class DynamicalWeights:
    """Cyclic class weights Gamma_i(t) of the dynamical-loss paper, as its official code makes them.

    Within a period the raw weight of one class follows a triangle 1 -> A -> 1 (linear in
    tau/T, peak A at tau = T/2), every other raw weight is 1, and the vector is renormalized
    to sum to C. The emphasized class cycles 0, 1, ..., C-1, 0, ... As in the code, a period
    lasts ``period + 1`` steps (its counter runs tau = 0..T inclusive), and with
    ``last_period_plain`` and a known ``total_steps`` the final period uses A = 1 (plain loss).
    """

    def __init__(self, num_classes: int, amplitude: float, period: int, *,
                 total_steps: int | None = None, last_period_plain: bool = True,
                 start_class: int = 0):
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        _check_range("amplitude", amplitude, 1.0)
        if period < 1:
            raise ValueError(f"period must be >= 1 step, got {period}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.num_classes = int(num_classes)
        self.amplitude = float(amplitude)
        self.period = int(period)
        self.total_steps = total_steps
        self.last_period_plain = last_period_plain
        self.start_class = int(start_class) % num_classes

    @property
    def steps_per_period(self) -> int:
        return self.period + 1

    def phase(self, step: int) -> tuple[int, int, float]:
        """(period index, emphasized class, amplitude in force) at global ``step`` (0-based)."""
        index = step // self.steps_per_period
        cls = (self.start_class + index) % self.num_classes
        amplitude = self.amplitude
        if self.last_period_plain and self.total_steps is not None:
            if index == (self.total_steps - 1) // self.steps_per_period:
                amplitude = 1.0
        return index, cls, amplitude

    def raw_weight(self, tau: int, amplitude: float) -> float:
        """The triangle 1 -> A -> 1 at time ``tau`` in [0, T] within a period."""
        x = tau / self.period
        if x < 0.5:
            return 1.0 + 2.0 * (amplitude - 1.0) * x
        return 2.0 * amplitude - 1.0 - 2.0 * (amplitude - 1.0) * x

    def weights(self, step: int, dtype: torch.dtype = torch.float64,
                device: torch.device | str | None = None) -> torch.Tensor:
        """Gamma(step), a (C,) tensor with every entry > 0 and sum C."""
        _, cls, amplitude = self.phase(step)
        w = self.raw_weight(step % self.steps_per_period, amplitude)
        gamma = torch.full((self.num_classes,), self.num_classes / (self.num_classes - 1 + w),
                           dtype=dtype, device=device)
        gamma[cls] = self.num_classes * w / (self.num_classes - 1 + w)
        return gamma

    def table(self, steps: int) -> torch.Tensor:
        """Gamma for steps 0..steps-1 as a (steps, C) float64 tensor (for figures)."""
        return torch.stack([self.weights(s) for s in range(steps)])

    def __repr__(self) -> str:
        return (f"DynamicalWeights(C={self.num_classes}, A={self.amplitude}, T={self.period}, "
                f"total_steps={self.total_steps}, last_period_plain={self.last_period_plain}, "
                f"start_class={self.start_class})")


class DynamicalLoss:
    """A base loss weighted per class by a :class:`DynamicalWeights` schedule.

    Stateful: it holds the step counter. The training loop calls :meth:`advance` after
    every optimizer step (``companion.train.fit`` does so for any loss with ``advance``).
    """

    def __init__(self, base: Loss | Callable[..., torch.Tensor], schedule: DynamicalWeights):
        self.base = base
        self.schedule = schedule
        self.step = 0

    def current_weights(self, like: torch.Tensor) -> torch.Tensor:
        return self.schedule.weights(self.step, dtype=like.dtype if like.is_floating_point()
                                     else torch.float32, device=like.device)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor,
                 class_weights: torch.Tensor | None = None) -> torch.Tensor:
        gamma = self.current_weights(logits.float() if logits.dtype in
                                     (torch.float16, torch.bfloat16) else logits)
        if class_weights is not None:
            gamma = gamma * class_weights.to(gamma)
        return self.base(logits, targets, class_weights=gamma)

    def advance(self, steps: int = 1) -> None:
        self.step += steps

    def __repr__(self) -> str:
        return f"DynamicalLoss({self.base!r}, {self.schedule!r}, step={self.step})"
