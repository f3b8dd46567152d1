"""The unconstrained-features (layer-peeled) model, trained by full-batch GD in float64.

Free variables W (K, d), H (d, N) with class-major columns (column k*n + i has label k) and
b (K,); logits Z = H^T W^T + b (N, K). The objective (nc_losses.md §1.1; unhinged.md §1.2)

    f(W, H, b) = (1/N) sum_i loss(Z_i, y_i)
                 + lambda_w/2 ||W||^2 + lambda_h/2 ||H||^2 + lambda_b/2 ||b||^2

uses any loss of :mod:`companion.losses` with its mean reduction. The gradient is exact and
cheap: G = dL/dZ (N, K) is closed form for ce, ls, focal, mse and unhinged and autograd on
the logits alone for any other loss, and the linear layer is closed form, dW = G^T H^T,
dH = W^T G^T, db = sum_i G_i.

:func:`train` runs GD (or a finer integration of the gradient flow) with per-block learning
rates lr * lr_scale[block] * lr_schedule(step) (the unhinged paper's eta_1 = s * eta_2 is
``lr_scale={"H": s}``), frozen blocks (a fixed classifier: ``frozen=("W",)``), a projection
after every step (:func:`sphere` for features on a sphere), features normalized inside the
loss (``normalize_features``: logits W h/||h|| + b, the FNPAL form of the unhinged paper's
Theorem 7), and a history of any metrics every ``record_every`` steps. A list of seeds
trains that many independent models at once (batched matrix products).
:func:`compare_losses` trains several losses from the same seeds and tabulates their final
states (:func:`final_state`: NC metrics, margins, norms, bias).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from companion import losses

__all__ = ["UFMResult", "train", "objective", "gradient", "class_major_labels", "sphere",
           "nc_metrics", "final_state", "LossComparison", "compare_losses"]

BLOCKS = ("W", "H", "b")
Metrics = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, float]]


@dataclass
class UFMResult:
    """Final W (K, d), H (d, N), b (K,) (with a leading seed axis when trained on a list of
    seeds), the labels (N,), and the history: one row per recorded step (and seed) with
    ``step``, ``time`` (sum of lr * schedule so far, the gradient-flow clock), ``loss`` (the
    mean data term), ``objective``, ``grad_norm`` (over the blocks that move) and the metrics."""

    W: torch.Tensor
    H: torch.Tensor
    b: torch.Tensor
    labels: torch.Tensor
    history: pd.DataFrame
    seeds: list[int] = field(default_factory=list)
    diverged: bool = False  # any seed
    diverged_by_seed: list[bool] = field(default_factory=list)
    normalize_features: bool = False  # logits were W h/||h|| + b


def class_major_labels(num_classes: int, per_class: int, device: Any = None) -> torch.Tensor:
    """(N,) labels 0,..,0, 1,..,1, ...: the column order of H."""
    return torch.arange(num_classes, device=device).repeat_interleave(per_class)


def _as_loss(loss: str | Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    if isinstance(loss, str):
        return losses.get(loss, reduction="mean")
    if getattr(loss, "reduction", "mean") != "mean":
        raise ValueError(f"the UFM objective averages the loss: use reduction='mean', not {loss!r}")
    return loss


def _features(H: torch.Tensor, normalize: bool) -> torch.Tensor:
    return H / torch.linalg.vector_norm(H, dim=-2, keepdim=True) if normalize else H


def objective(loss: str | Callable[..., torch.Tensor], W: torch.Tensor, H: torch.Tensor,
              b: torch.Tensor | None, labels: torch.Tensor, lambda_w: float, lambda_h: float,
              lambda_b: float = 0.0, *, normalize_features: bool = False) -> torch.Tensor:
    """The UFM objective f(W, H, b) as a differentiable scalar (b=None: no bias)."""
    logits = _features(H, normalize_features).T @ W.T
    value = _as_loss(loss)(logits if b is None else logits + b, labels)
    value = value + 0.5 * lambda_w * W.pow(2).sum() + 0.5 * lambda_h * H.pow(2).sum()
    return value if b is None else value + 0.5 * lambda_b * b.pow(2).sum()


def _logits(W, H, b, normalize):
    """Batched logits (S, N, K) = features^T W^T + b."""
    return torch.baddbmm(b[:, None, :], _features(H, normalize).transpose(1, 2), W.transpose(1, 2))


def _logit_gradient(loss_fn, logits: torch.Tensor, labels: torch.Tensor,
                    onehot: torch.Tensor) -> torch.Tensor:
    """d loss_fn(logits, labels) / d logits for a mean-reduced loss (onehot = labels one-hot).

    Closed forms for the losses the UFM studies (several times cheaper than autograd on
    small problems; each is tested against autograd); autograd on the logits otherwise.
    """
    count, num_classes = logits.shape
    kind = type(loss_fn) if getattr(loss_fn, "reduction", None) == "mean" else None
    if kind is losses.CrossEntropy:
        return torch.softmax(logits, dim=1).sub_(onehot).div_(count)
    if kind is losses.LabelSmoothing:
        target = (1 - loss_fn.alpha) * onehot + loss_fn.alpha / num_classes
        return torch.softmax(logits, dim=1).sub_(target).div_(count)
    if kind is losses.MeanSquared:
        return (logits - loss_fn.scale * onehot).mul_(2.0 / (num_classes * count))
    if kind is losses.Unhinged:
        gamma = 1.0 / (num_classes - 1) if loss_fn.gamma is None else loss_fn.gamma
        return (gamma - (1 + gamma) * onehot) / count
    if kind is losses.Focal:
        # l = -(1-q)^g u with u = log q, q = p_y, du/dz = e_y - p, and
        # dl/du = (1-q)^(g-1) (g q u - (1-q)), with 1-q = -expm1(u) exact near q = 1.
        log_p = torch.log_softmax(logits, dim=1)
        u = log_p.gather(1, labels[:, None])
        rest = torch.expm1(u).neg_()
        g = loss_fn.gamma
        slope = rest.pow(g - 1).mul_(u.exp().mul_(u).mul_(g).sub_(rest))
        if g < 1:  # 0^(g-1) = inf at q = 1, where the limit is 0
            slope = torch.where(rest > 0, slope, 0.0)
        return (onehot - log_p.exp()).mul_(slope.div_(count))
    z = logits.detach().requires_grad_()
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_fn(z, labels), z)
    return grad


class _Problem:
    """The pieces of the objective that stay fixed during training (batched over S seeds)."""

    def __init__(self, loss_fn, labels, num_classes, seeds, decay, moving, normalize, dtype):
        self.loss_fn, self.labels, self.seeds = loss_fn, labels, seeds
        self.stacked = labels.repeat(seeds)
        self.onehot = torch.nn.functional.one_hot(self.stacked, num_classes).to(dtype)
        self.decay, self.moving, self.normalize = decay, moving, normalize

    def logit_gradient(self, state) -> torch.Tensor:
        """(S, N, K): seed s's block is the gradient of seed s's mean loss (the mean over the
        S*N stacked rows, times S, is the sum of the per-seed means)."""
        logits = _logits(state["W"], state["H"], state["b"], self.normalize)
        flat = logits.reshape(-1, logits.shape[-1])
        grad = _logit_gradient(self.loss_fn, flat, self.stacked, self.onehot)
        return (grad * self.seeds if self.seeds > 1 else grad).reshape(logits.shape)

    def feature_gradient(self, state, grad_z) -> torch.Tensor:
        """dL/dH of the data term, through h/||h|| when features are normalized."""
        grad = torch.bmm(state["W"].transpose(1, 2), grad_z.transpose(1, 2))
        if self.normalize:  # (I - h^ h^T) g / ||h||, column by column
            norms = torch.linalg.vector_norm(state["H"], dim=1, keepdim=True)
            unit = state["H"] / norms
            grad = (grad - unit * (unit * grad).sum(dim=1, keepdim=True)) / norms
        return grad

    def gradients(self, state, grad_z=None) -> dict[str, torch.Tensor]:
        """The full gradient (data term + weight decay) of every moving block."""
        grad_z = self.logit_gradient(state) if grad_z is None else grad_z
        feats = _features(state["H"], self.normalize)
        data = {"W": lambda: torch.bmm(grad_z.transpose(1, 2), feats.transpose(1, 2)),
                "H": lambda: self.feature_gradient(state, grad_z),
                "b": lambda: grad_z.sum(dim=1)}
        return {n: data[n]() + self.decay[n] * state[n] for n in self.moving}

    def euler(self, state, grad_z, etas) -> dict[str, torch.Tensor]:
        """One GD step X <- (1 - eta lambda) X - eta dX, the matrix products fused (baddbmm)."""
        new = dict(state)
        for name in self.moving:
            eta, keep = etas[name], 1.0 - etas[name] * self.decay[name]
            if name == "W":
                feats = _features(state["H"], self.normalize)
                new["W"] = torch.baddbmm(state["W"], grad_z.transpose(1, 2), feats.transpose(1, 2),
                                         beta=keep, alpha=-eta)
            elif name == "H" and not self.normalize:
                new["H"] = torch.baddbmm(state["H"], state["W"].transpose(1, 2),
                                         grad_z.transpose(1, 2), beta=keep, alpha=-eta)
            elif name == "H":
                new["H"] = torch.add(keep * state["H"], self.feature_gradient(state, grad_z),
                                     alpha=-eta)
            else:
                new["b"] = torch.add(keep * state["b"], grad_z.sum(dim=1), alpha=-eta)
        return new

    def rk4(self, state, etas) -> dict[str, torch.Tensor]:
        """One classical Runge-Kutta step of X' = -grad_X f, block X advanced by etas[X]."""

        def shifted(grads, fraction):
            out = dict(state)
            for name in self.moving:
                out[name] = state[name] - fraction * etas[name] * grads[name]
            return out

        k1 = self.gradients(state)
        k2 = self.gradients(shifted(k1, 0.5))
        k3 = self.gradients(shifted(k2, 0.5))
        k4 = self.gradients(shifted(k3, 1.0))
        return shifted({n: (k1[n] + 2 * k2[n] + 2 * k3[n] + k4[n]) / 6 for n in self.moving}, 1.0)


def gradient(loss: str | Callable[..., torch.Tensor], W: torch.Tensor, H: torch.Tensor,
             b: torch.Tensor | None, labels: torch.Tensor, lambda_w: float, lambda_h: float,
             lambda_b: float = 0.0, *, normalize_features: bool = False) -> dict[str, torch.Tensor]:
    """The gradient of :func:`objective` as {"W", "H"(, "b")}: the closed form train uses."""
    moving = ["W", "H"] + ([] if b is None else ["b"])
    bias = torch.zeros(W.shape[0], dtype=W.dtype, device=W.device) if b is None else b
    problem = _Problem(_as_loss(loss), labels, W.shape[0], 1,
                       {"W": lambda_w, "H": lambda_h, "b": lambda_b}, moving, normalize_features,
                       W.dtype)
    with torch.no_grad():
        grads = problem.gradients({"W": W[None], "H": H[None], "b": bias[None]})
    return {name: value[0] for name, value in grads.items()}


def sphere(radius: float = 1.0, blocks: Sequence[str] = ("H",), *, ball: bool = False) -> Callable:
    """A ``project`` hook putting each feature h_i (a column of H) and each class vector w_k
    (a row of W) of the named blocks on the sphere of norm ``radius``, or with ``ball=True``
    into the ball (only longer vectors shrink: the norm bounds of the unhinged paper's Lemma 1)."""

    def project(name: str, tensor: torch.Tensor) -> torch.Tensor:
        if name not in blocks:
            return tensor
        norms = torch.linalg.vector_norm(tensor, dim=-2 if name == "H" else -1, keepdim=True)
        factor = radius / norms
        return tensor * (factor.clamp(max=1.0) if ball else factor)

    return project


def nc_metrics(W: torch.Tensor, H: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """A ready ``metrics`` hook: :func:`companion.metrics.neural_collapse` of a class-major UFM."""
    from companion.metrics import neural_collapse

    labels = class_major_labels(W.shape[0], H.shape[1] // W.shape[0], device=H.device)
    return neural_collapse(H.T, labels, W, b)


def _initial(name, shape, init, init_scale, gen, dtype, device):
    # W and H are always drawn, so that overriding one block leaves the other's draw alone.
    value = (torch.zeros(shape, dtype=dtype) if name == "b"
             else init_scale * torch.randn(shape, generator=gen, dtype=dtype))
    if init is not None and name in init:
        value = torch.as_tensor(init[name], dtype=dtype).clone()
        if value.shape != shape:
            raise ValueError(f"init[{name!r}] has shape {tuple(value.shape)}, need {shape}")
    return value.to(device)


def train(loss: str | Callable[..., torch.Tensor], num_classes: int, per_class: int, dim: int, *,
          lambda_w: float, lambda_h: float, lambda_b: float = 0.0, steps: int, lr: float,
          lr_scale: dict[str, float] | None = None,
          lr_schedule: Callable[[int], float] | None = None, bias: bool = True,
          frozen: Sequence[str] = (), init: dict[str, Any] | None = None,
          init_scale: float | None = None,
          project: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
          normalize_features: bool = False, seed: int | Sequence[int] = 0,
          record_every: int = 100, metrics: Metrics | None = None,
          integrator: str = "euler", substeps: int = 1, device: Any = None,
          dtype: torch.dtype = torch.float64) -> UFMResult:
    """Minimize the UFM objective by full-batch gradient descent; see the module docstring.

    Step t updates each moving block X by X -= lr * lr_scale[X] * lr_schedule(t) * dX, then
    applies ``project(name, X)`` (also once to the initial values, so that projected GD
    starts on the constraint set). ``integrator="euler"`` with ``substeps=1`` is plain GD;
    ``substeps=m`` splits each step into m Euler steps of 1/m the size, and
    ``integrator="rk4"`` uses m classical Runge-Kutta steps: both follow the gradient flow
    dX/dt = -lr_scale[X] * lr_schedule(t) * dX/df over time lr per step (the schedule held
    constant within a step), RK4 with error O((lr/m)^4) instead of Euler's O(lr/m).

    Initial W and H are N(0, init_scale^2) (default init_scale = 1/sqrt(dim), the NC pilots'
    choice), drawn in that order from a generator seeded with ``seed``; b starts at 0;
    ``init`` overrides any of them. With ``bias=False`` b stays 0 and is not a variable.
    ``frozen`` blocks keep their initial values. ``metrics(W, H, b) -> dict`` is called on
    every recorded state (unbatched tensors; :func:`nc_metrics` computes the NC metrics).
    A list of seeds returns W (S, K, d), H (S, d, N), b (S, K), the same as S separate runs,
    and a ``seed`` column in the history. A run whose objective stops being finite is
    recorded once more and stopped (``diverged=True``); in a batch only that seed stops
    (``diverged_by_seed``), the others go on as they would alone.
    """
    if integrator not in ("euler", "rk4"):
        raise ValueError(f"integrator must be 'euler' or 'rk4', got {integrator!r}")
    if substeps < 1 or steps < 0 or record_every < 1:
        raise ValueError("need substeps >= 1, steps >= 0, record_every >= 1")
    unknown = (set(frozen) | set(lr_scale or {})) - set(BLOCKS)
    if unknown:
        raise ValueError(f"unknown blocks {sorted(unknown)}; blocks are {BLOCKS}")
    batched = not isinstance(seed, int)
    seeds = list(seed) if batched else [seed]
    loss_fn = _as_loss(loss)
    device = torch.device("cpu") if device is None else torch.device(device)
    scale = 1.0 / math.sqrt(dim) if init_scale is None else init_scale
    labels = class_major_labels(num_classes, per_class, device=device)
    shapes = {"W": (num_classes, dim), "H": (dim, num_classes * per_class), "b": (num_classes,)}

    state = {name: [] for name in BLOCKS}
    for s in seeds:
        gen = torch.Generator().manual_seed(s)
        for name in BLOCKS:
            state[name].append(_initial(name, shapes[name], init, scale, gen, dtype, device))
    state = {name: torch.stack(values) for name, values in state.items()}
    moving = [name for name in BLOCKS if name not in frozen and (bias or name != "b")]
    decay = {"W": lambda_w, "H": lambda_h, "b": lambda_b}
    multiplier = {name: (lr_scale or {}).get(name, 1.0) for name in BLOCKS}
    if project is not None:
        for name in moving:
            state[name] = project(name, state[name])

    problem = _Problem(loss_fn, labels, num_classes, len(seeds), decay, moving,
                       normalize_features, dtype)
    rows: list[dict[str, Any]] = []
    clock = 0.0
    diverged = [False] * len(seeds)

    def record(step, grads):
        logits = _logits(state["W"], state["H"], state["b"], normalize_features)
        for i, s in enumerate(seeds):
            if diverged[i]:
                continue  # stopped earlier: as a separate run, it records nothing more
            value = float(loss_fn(logits[i], labels))
            reg = sum(0.5 * decay[n] * state[n][i].pow(2).sum().item()
                      for n in BLOCKS if bias or n != "b")
            row = {"seed": s, "step": step, "time": clock, "loss": value,
                   "objective": value + reg,
                   "grad_norm": math.sqrt(sum(g[i].pow(2).sum().item() for g in grads.values()))}
            if not math.isfinite(row["objective"]):
                diverged[i] = True
            elif metrics is not None:
                row.update(metrics(state["W"][i], state["H"][i], state["b"][i]))
            rows.append(row)

    with torch.no_grad():
        for step in range(steps + 1):
            grad_z = problem.logit_gradient(state)
            if step % record_every == 0 or step == steps:
                record(step, problem.gradients(state, grad_z))
                if all(diverged) or step == steps:
                    break
            before = dict(state) if any(diverged) else None
            eta = lr * (1.0 if lr_schedule is None else float(lr_schedule(step)))
            etas = {name: eta * multiplier[name] / substeps for name in moving}
            for sub in range(substeps):
                if integrator == "rk4":
                    state = problem.rk4(state, etas)
                else:
                    if sub > 0:
                        grad_z = problem.logit_gradient(state)
                    state = problem.euler(state, grad_z, etas)
            if project is not None:
                for name in moving:
                    state[name] = project(name, state[name])
            if before is not None:  # diverged seeds keep the state they stopped at
                stopped = torch.tensor(diverged, device=device)
                state = {name: torch.where(stopped.view(-1, *[1] * (value.ndim - 1)), before[name], value)
                         for name, value in state.items()}
            clock += eta
            if hasattr(loss_fn, "advance"):
                loss_fn.advance()

    history = pd.DataFrame(rows)
    flags = dict(diverged=any(diverged), diverged_by_seed=diverged, normalize_features=normalize_features)
    if not batched:
        history = history.drop(columns="seed")
        return UFMResult(state["W"][0], state["H"][0], state["b"][0], labels, history, seeds, **flags)
    return UFMResult(state["W"], state["H"], state["b"], labels, history, seeds, **flags)


# -- several losses side by side -------------------------------------------------------------


NC_KEYS = ("nc1", "nc2_w", "nc2_h", "nc3", "nc4", "wmu_b")


def _rms_norm(x: torch.Tensor, dim: int) -> float:
    """sqrt(mean squared norm along ``dim``), scaled first: no overflow for a blown-up run."""
    peak = x.abs().max()
    if not torch.isfinite(peak) or peak == 0:
        return float(peak)
    return float(peak * (x / peak).pow(2).sum(dim).mean().sqrt())


def final_state(result: UFMResult) -> pd.DataFrame:
    """The final (W, H, b) of a run, one row per seed.

    Columns: ``seed``, ``steps`` and ``objective``, ``loss`` (the mean data term) of the
    last recorded step, ``diverged``; the NC metrics of :func:`nc_metrics` (NaN when the
    state is not finite); the margins z_y - max_{j != y} z_j over the samples
    (``margin_mean``, ``margin_min``, ``margin_max``; of the logits the run used, normalized
    features included); the root-mean-square class-vector and
    feature norms ``w_norm`` = sqrt(mean_k ||w_k||^2), ``h_norm`` = sqrt(mean_i ||h_i||^2)
    (overflow-safe, so a run that blew up shows how far); the bias ``bias_mean`` and
    ``bias_spread`` (largest minus smallest entry).
    """
    from companion.metrics import margins

    W, H, b = result.W, result.H, result.b
    if W.ndim == 2:  # a single-seed run: give it the seed axis
        W, H, b = W[None], H[None], b[None]
    seeds = result.seeds or list(range(len(W)))
    history = result.history if "seed" in result.history else result.history.assign(seed=seeds[0])
    rows = []
    for i, s in enumerate(seeds):
        last = history[history["seed"] == s].iloc[-1]
        row = {"seed": s, "steps": int(last["step"]), "loss": float(last["loss"]),
               "objective": float(last["objective"]),
               "diverged": bool(result.diverged_by_seed[i] if result.diverged_by_seed else result.diverged)}
        finite = bool(torch.isfinite(W[i]).all() and torch.isfinite(H[i]).all()
                      and torch.isfinite(b[i]).all())
        nc = nc_metrics(W[i], H[i], b[i]) if finite else {}
        row.update({k: nc.get(k, math.nan) for k in NC_KEYS})
        margin = margins(_features(H[i], result.normalize_features).T @ W[i].T + b[i], result.labels.to(H.device))
        row.update(margin_mean=float(margin.mean()), margin_min=float(margin.min()),
                   margin_max=float(margin.max()), w_norm=_rms_norm(W[i], 1),
                   h_norm=_rms_norm(H[i], 0), bias_mean=float(b[i].mean()),
                   bias_spread=float(b[i].max() - b[i].min()))
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass
class LossComparison:
    """:func:`compare_losses`' output: the runs by name, every history and every final
    state stacked with a ``name`` column (one row per recorded step / per seed)."""

    runs: dict[str, UFMResult]
    history: pd.DataFrame
    final: pd.DataFrame


def compare_losses(losses_by_name: Mapping[str, str | Callable[..., torch.Tensor]],
                   num_classes: int, per_class: int, dim: int, *,
                   seed: int | Sequence[int] = (0,), **train_kwargs: Any) -> LossComparison:
    """Train the UFM once per loss with the same settings and seeds, and collect the results.

    ``losses_by_name`` maps a name to a loss name or object; a loss object is deep-copied
    before its run, so a stateful one (``losses.DynamicalLoss``) starts at step 0 every time
    and the caller's object is left as it was. Every run uses the same seeds, hence the same
    initial W and H. ``train_kwargs`` go to :func:`train` (lambda_w, lambda_h, steps, lr,
    ...). The final table is :func:`final_state` of every run.
    """
    seeds = [seed] if isinstance(seed, int) else list(seed)
    runs: dict[str, UFMResult] = {}
    histories, finals = [], []
    for name, loss in losses_by_name.items():
        fresh = loss if isinstance(loss, str) else copy.deepcopy(loss)
        result = train(fresh, num_classes, per_class, dim, seed=seeds, **train_kwargs)
        runs[name] = result
        histories.append(result.history.assign(name=name))
        finals.append(final_state(result).assign(name=name))
    history = pd.concat(histories, ignore_index=True)
    final = pd.concat(finals, ignore_index=True)
    ordered = ["name"] + [c for c in final.columns if c != "name"]
    return LossComparison(runs, history, final[ordered])
