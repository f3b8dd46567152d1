"""Full-batch gradient descent of many small one-hidden-layer ReLU networks at once.

The dynamical-loss paper trains a ``d -> width -> C`` ReLU network by full-batch gradient
descent for tens of thousands of steps, and the claims need that for several widths, seeds,
learning rates and class-weight schedules. One such network is a dozen tiny kernels per step,
so a loop over networks is all overhead. :func:`train` runs a whole ensemble in lock-step in
float64: members of equal width form a group whose forward and backward passes are batched
matmuls (``bmm``), the loss gradient is computed once for all members, and one fused update
moves every parameter::

    dl = losses.DynamicalWeights(3, amplitude=70, period=5000, total_steps=35_000)
    members = [Member(width=w, seed=s, schedule=sched, tag=tag)
               for w in (20, 50, 100, 200) for s in (0, 1) for tag, sched in (("CE", None), ("DL", dl))]
    run = ensembles.train(members, x, y, steps=35_000, record_every=500)
    run.history    # one row per member and recorded step

Every member is exactly the network it would be alone (``tests/test_ensembles.py`` checks the
trajectories against a plain per-network autograd loop):

* initialization :func:`init_parameters`, one of the official code's two (``Member.init``):
  ``"nt_standard"`` (default), the paper's: neural-tangents ``stax.Dense`` with the standard
  parameterization as the 2021 code built it (W_std = 1, b_std = 0 until neural-tangents made
  b_std = None, i.e. no bias, its default in October 2021), W ~ N(0, 1/fan_in), biases zero and
  trainable; ``"glorot"``, the updated notebook's (2022, ``jax.example_libraries.stax.Dense``
  defaults): W Glorot-normal (a normal truncated at 2 sd, rescaled to variance
  2/(fan_in + fan_out)), biases N(0, 0.01^2). Drawn from ``torch.Generator().manual_seed(seed)``
  on the CPU, so a seed gives the same network on every device;
* loss: any ``companion.losses`` loss ``l`` (default cross-entropy) as the mean over samples of
  Gamma_{y_n}(t) l(f(x_n), y_n), Gamma(t) the member's ``DynamicalWeights`` at step t (all ones
  without a schedule). Cross-entropy uses its closed-form gradient softmax - onehot; other losses
  are differentiated by autograd on the (members, samples, classes) logits only;
* update: theta <- theta - lr * gradient, each member with its own lr.

Records: the row of step s describes the parameters after s updates (the point where the
gradient of step s is taken) and Gamma(s); s runs over 0, k, 2k, ... and the last step. Hidden
activations are stored units-by-samples, (G, width, N), so that the class axis is never the
innermost one (tiny innermost axes defeat the vectorized CPU kernels).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from . import losses as losses_module

__all__ = ["Member", "EnsembleState", "EnsembleRun", "init_parameters", "forward", "to_module", "train",
           "top_hessian_eigenvalue"]


@dataclass(frozen=True)
class Member:
    """One network of an ensemble: hidden width, init seed, learning rate, class-weight schedule.

    ``schedule=None`` trains the plain loss (every class weight 1); ``tag`` labels the member
    in the history (e.g. "CE" or "DL"); ``init`` is one of :data:`INITS` (see
    :func:`init_parameters`).
    """

    width: int
    seed: int = 0
    lr: float = 1.0
    schedule: losses_module.DynamicalWeights | None = None
    tag: str = ""
    init: str = "nt_standard"


#: the initializations of the official code: the paper's (2021) and the updated notebook's (2022)
INITS = ("nt_standard", "glorot")
#: the standard deviation of a standard normal truncated to [-2, 2] (jax's variance_scaling constant)
_TRUNCATED_SD = 0.87962566103423978
#: the bias standard deviation of ``jax.example_libraries.stax.Dense`` (``normal()``)
_GLOROT_BIAS_SD = 1e-2


def _truncated_normal(shape: tuple[int, ...], gen: torch.Generator) -> Tensor:
    """Standard normals truncated to [-2, 2] (inverse CDF of uniforms: no rejection loop)."""
    low, high = torch.special.ndtr(torch.tensor([-2.0, 2.0], dtype=torch.float64))
    u = low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)
    return torch.special.ndtri(u)


def init_parameters(in_features: int, width: int, num_classes: int, seed: int, *,
                    init: str = "nt_standard", dtype: torch.dtype = torch.float64,
                    device: torch.device | str | None = None) -> dict[str, Tensor]:
    """An initialization of the official code in ``nn.Linear`` layout: W1 (width, d), b1, W2 (C, width), b2.

    ``"nt_standard"`` (the paper's): W ~ N(0, 1/fan_in), zero biases. ``"glorot"`` (the updated
    notebook's): W ~ sqrt(2 / (fan_in + fan_out)) / 0.8796 x a standard normal truncated to
    [-2, 2] (variance 2 / (fan_in + fan_out), as jax's ``glorot_normal``), biases N(0, 0.01^2).
    W1 is drawn before W2 (then b1, b2) from a generator seeded by ``seed``.
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    gen = torch.Generator().manual_seed(int(seed))
    if init == "nt_standard":
        w1 = torch.randn(width, in_features, generator=gen, dtype=torch.float64) / math.sqrt(in_features)
        w2 = torch.randn(num_classes, width, generator=gen, dtype=torch.float64) / math.sqrt(width)
        b1, b2 = torch.zeros(width, dtype=torch.float64), torch.zeros(num_classes, dtype=torch.float64)
    else:
        def glorot(fan_out: int, fan_in: int) -> Tensor:
            scale = math.sqrt(2.0 / (fan_in + fan_out)) / _TRUNCATED_SD
            return _truncated_normal((fan_out, fan_in), gen) * scale

        w1, w2 = glorot(width, in_features), glorot(num_classes, width)
        b1 = torch.randn(width, generator=gen, dtype=torch.float64) * _GLOROT_BIAS_SD
        b2 = torch.randn(num_classes, generator=gen, dtype=torch.float64) * _GLOROT_BIAS_SD
    params = {"W1": w1, "b1": b1, "W2": w2, "b2": b2}
    return {k: v.to(dtype=dtype, device=device) for k, v in params.items()}


def forward(params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """Logits relu(x W1^T + b1) W2^T + b2 of one member, shape (N, C)."""
    hidden = torch.relu(x @ params["W1"].T + params["b1"])
    return hidden @ params["W2"].T + params["b2"]


def to_module(params: Mapping[str, Tensor]) -> torch.nn.Module:
    """The member as ``companion.models.mlp`` (for tools that take a module, e.g. the NTK)."""
    from . import models

    width, in_features = params["W1"].shape
    module = models.mlp(in_features, width, params["W2"].shape[0])
    first = next(m for m in module.body if isinstance(m, torch.nn.Linear))
    module = module.to(dtype=params["W1"].dtype, device=params["W1"].device)
    with torch.no_grad():
        first.weight.copy_(params["W1"])
        first.bias.copy_(params["b1"])
        module.classifier.weight.copy_(params["W2"])
        module.classifier.bias.copy_(params["b2"])
    return module


# -- the engine -----------------------------------------------------------------------------------
#
# Notation: x~ = [x, 1] (K = d + 1 rows, the first-layer bias is the last input weight), the units
# u of all members side by side (U in all), W1 stored as (K, U) and W2 as (C, U); a width group's
# activations A = relu(W1 x~) are laid out (G, h, N). The forward pass is the textbook one,
# logits = W2 A + b2. For the backward pass, with M = 1[A > 0] the ReLU mask and relu(z) = M z,
#
#   dF/dW1_ku = sum_c W2_cu Q_kcu,   dF/dW2_cu = sum_k W1_ku Q_kcu,   Q_kcu = sum_n M_un R_kcn,
#   R_kcn = x~_kn delta_cn,  delta = dF/dlogits,
#
# one matmul with K*C columns gives both gradients. A step touches the big (G, h, N) arrays five
# times (A written by a matmul, clamped, read by the logits matmul, turned into M, read by the
# Q matmul) instead of the nine passes of the textbook backward, in 6 kernels per width group.
# Small axes (K, C) are never innermost: torch's CPU kernels crawl over them.


@dataclass
class _Group:
    """The members of one width: their slots (rows of per-member arrays) and units, buffers."""

    width: int
    slots: slice                 # rows in every (M, ...) array
    units: slice                 # rows in every (U, ...) array
    hidden: Tensor               # (G, h, N): A = relu(W1 x~), then (backward) the mask 1[A > 0]
    q: Tensor                    # (G, h, K*C): M R^T
    eval_hidden: dict[str, Tensor] = field(default_factory=dict)   # A on each eval set
    # views into the engine's arrays, made once (a view per step costs as much as a small op)
    w1: Tensor | None = None     # (G, h, K) of W1
    w2: Tensor | None = None     # (G, C, h) of W2
    b2: Tensor | None = None     # (G, C, 1) of b2
    logits: Tensor | None = None  # (G, C, N) of the logits
    r_t: Tensor | None = None    # (G, N, K*C) of R
    q_dest: Tensor | None = None  # (K*C, G, h) of Q
    q_src: Tensor | None = None  # (K*C, G, h) of this group's q
    inputs_t: Tensor | None = None  # (G, K, N) of x~

    @property
    def count(self) -> int:
        return self.slots.stop - self.slots.start


def _augment(x: Tensor) -> Tensor:
    """[x, 1]^T, shape (K, N): the bias of the first layer becomes the last input weight."""
    ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
    return torch.cat([x, ones], dim=1).T.contiguous()


class EnsembleState:
    """What a callback sees at step ``step``: the parameters before that step's update."""

    def __init__(self, engine: _Engine, step: int, gamma: Tensor):
        self._engine = engine
        self.step = step
        self._gamma = gamma

    @property
    def members(self) -> list[Member]:
        return self._engine.members

    def parameters(self, member: int) -> dict[str, Tensor]:
        """Copies of member ``member``'s W1, b1, W2, b2 (``nn.Linear`` layout)."""
        return self._engine.parameters(member)

    def class_weights(self, member: int) -> Tensor:
        """Gamma(step) of member ``member``, shape (C,)."""
        return self._gamma[self._engine.slot_of[member]].clone()


@dataclass
class EnsembleRun:
    """The outcome of :func:`train`."""

    members: list[Member]
    history: pd.DataFrame
    callbacks: pd.DataFrame
    seconds: float
    steps: int
    final_parameters: list[dict[str, Tensor]]

    def parameters(self, member: int) -> dict[str, Tensor]:
        """Member ``member``'s parameters after the last step (``nn.Linear`` layout)."""
        return self.final_parameters[member]

    def summary(self) -> pd.DataFrame:
        """One row per member: its settings, final and best training accuracy, final losses."""
        last = self.history[self.history.step == self.steps].set_index("member")
        best = self.history.groupby("member")["acc"].max()
        table = last.drop(columns=["step"]).rename(columns={"acc": "final_acc"})
        table.insert(table.columns.get_loc("final_acc") + 1, "best_acc", best)
        return table.reset_index()


class _Engine:
    def __init__(self, members: Sequence[Member], x: Tensor, y: Tensor, loss: losses_module.Loss,
                 num_classes: int, steps: int, eval_sets: Mapping[str, tuple[Tensor, Tensor]]):
        self.members = list(members)
        self.loss = loss
        self.fast_ce = type(loss) is losses_module.CrossEntropy
        self.x, self.y, self.num_classes, self.steps = x, y, num_classes, steps
        dtype, device = x.dtype, x.device
        n, d = x.shape
        k, c = d + 1, num_classes
        # slots: members sorted by width (stable), so that each width is one contiguous block
        order = sorted(range(len(self.members)), key=lambda i: self.members[i].width)
        self.member_of_slot = order
        self.slot_of = {member: slot for slot, member in enumerate(order)}
        widths = [self.members[i].width for i in order]
        m, units = len(order), sum(widths)
        # one flat parameter vector [W1 (K, U) | W2 (C, U) | b2 (M, C)], gradient alike
        self.theta = torch.zeros(units * (k + c) + m * c, dtype=dtype, device=device)
        self.grad = torch.zeros_like(self.theta)
        self.w1 = self.theta[: units * k].view(k, units)
        self.w2 = self.theta[units * k: units * (k + c)].view(c, units)
        self.b2 = self.theta[units * (k + c):].view(m, c, 1)
        self.g_w1 = self.grad[: units * k].view(k, units)
        self.g_w2 = self.grad[units * k: units * (k + c)].view(c, units)
        self.g_b2 = self.grad[units * (k + c):].view(m, c, 1)
        unit_lr = torch.tensor([-float(self.members[i].lr) for i in order for _ in
                                range(self.members[i].width)], dtype=dtype, device=device)
        slot_lr = torch.tensor([-float(self.members[i].lr) for i in order], dtype=dtype, device=device)
        self.neg_lr = torch.cat([unit_lr.repeat(k), unit_lr.repeat(c), slot_lr.repeat_interleave(c)])
        self.unit_start = np.cumsum([0] + widths)[:-1].tolist()
        for slot, member_index in enumerate(order):
            member, first = self.members[member_index], self.unit_start[slot]
            p = init_parameters(d, member.width, c, member.seed, init=member.init, dtype=dtype,
                                device=device)
            cols = slice(first, first + member.width)
            self.w1[:d, cols] = p["W1"].T
            self.w1[d, cols] = p["b1"]
            self.w2[:, cols] = p["W2"]
            self.b2[slot, :, 0] = p["b2"]
        self.x_t = _augment(x)
        self.eval_inputs = {name: _augment(xe.to(dtype=dtype, device=device))
                            for name, (xe, _) in eval_sets.items()}
        self.groups: list[_Group] = []
        for width in dict.fromkeys(widths):
            start, count = widths.index(width), widths.count(width)
            first = self.unit_start[start]
            group = _Group(width=width, slots=slice(start, start + count),
                           units=slice(first, first + count * width),
                           hidden=torch.empty(count, width, n, dtype=dtype, device=device),
                           q=torch.empty(count, width, k * c, dtype=dtype, device=device))
            for name, xe_t in self.eval_inputs.items():
                group.eval_hidden[name] = torch.empty(count, width, xe_t.shape[1], dtype=dtype,
                                                      device=device)
            self.groups.append(group)
        self.q = torch.empty(k, c, units, dtype=dtype, device=device)
        self.r = torch.empty(m, k, c, n, dtype=dtype, device=device)
        self.x_k = self.x_t.view(1, k, 1, n)
        self.w1_k1u, self.w2_1cu = self.w1.unsqueeze(1), self.w2.unsqueeze(0)   # for the contractions
        self.logits = torch.empty(m, c, n, dtype=dtype, device=device)
        for g in self.groups:
            g.w1, g.w2 = self._group_views(g)
            g.b2 = self.b2[g.slots]
            g.logits = self.logits[g.slots]
            g.r_t = self.r[g.slots].view(g.count, k * c, n).transpose(1, 2)
            g.q_dest = self.q.view(k * c, units)[:, g.units].view(k * c, g.count, g.width)
            g.q_src = g.q.permute(2, 0, 1)
            g.inputs_t = self.x_t.expand(g.count, k, n)
        self.onehot_t = torch.nn.functional.one_hot(y, c).T.to(dtype).contiguous()  # (C, N)
        self.eval_sets = {name: (xe, ye.to(device)) for name, (xe, ye) in eval_sets.items()}
        self._build_weight_tables(steps, dtype, device)

    def _build_weight_tables(self, steps: int, dtype: torch.dtype, device: torch.device) -> None:
        """Gamma(t) for t = 0..steps of every distinct schedule (table 0: all ones)."""
        distinct: dict[str, int] = {}
        tables = [torch.ones(steps + 1, self.num_classes, dtype=torch.float64)]
        index = []
        for slot_member in self.member_of_slot:
            schedule = self.members[slot_member].schedule
            if schedule is None:
                index.append(0)
                continue
            key = repr(schedule)  # names every field of the schedule, start_class included
            if key not in distinct:
                distinct[key] = len(tables)
                tables.append(schedule.table(steps + 1))
            index.append(distinct[key])
        self.weight_tables = torch.stack(tables, dim=1).to(dtype=dtype, device=device)  # (T, S, C)
        self.weight_tables_over_n = (self.weight_tables / self.x.shape[0]).unsqueeze(2)  # (T, S, 1, C)
        self.table_of_slot = torch.tensor(index, device=device)
        self.constant_weights = len(tables) == 1

    def class_weights(self, step: int) -> Tensor:
        """Gamma(step) per slot, shape (M, C)."""
        return self.weight_tables[step].index_select(0, self.table_of_slot)

    def sample_weights(self, step: int) -> Tensor:
        """Gamma_{y_n}(step) / N per slot and sample, shape (M, 1, N): the weights of the mean."""
        per_class = self.weight_tables_over_n[step].index_select(0, self.table_of_slot)
        return per_class.index_select(2, self.y)

    def _group_views(self, g: _Group) -> tuple[Tensor, Tensor]:
        """(W1 as (G, h, K), W2 as (G, C, h)) of group g: strided views, no copies."""
        k, c = self.w1.shape[0], self.w2.shape[0]
        w1 = self.w1[:, g.units].view(k, g.count, g.width).permute(1, 2, 0)
        w2 = self.w2[:, g.units].view(c, g.count, g.width).transpose(0, 1)
        return w1, w2

    def forward(self) -> None:
        """Logits of every member into ``self.logits``; leaves A in each group's ``hidden``."""
        for g in self.groups:
            torch.bmm(g.w1, g.inputs_t, out=g.hidden)
            g.hidden.clamp_min_(0)
            torch.baddbmm(g.b2, g.w2, g.hidden, out=g.logits)

    def eval_logits(self, name: str) -> Tensor:
        xe_t = self.eval_inputs[name]
        out = []
        for g in self.groups:
            hidden = g.eval_hidden[name]
            torch.bmm(g.w1, xe_t.expand(g.count, *xe_t.shape), out=hidden)
            hidden.clamp_min_(0)
            out.append(torch.baddbmm(g.b2, g.w2, hidden))
        return torch.cat(out)

    def per_sample_loss(self, logits: Tensor, y: Tensor) -> Tensor:
        """The base loss of every member and sample, (M, N), from (M, C, N) logits and y (N,)."""
        m, c, n = logits.shape
        if self.fast_ce:
            target = y.view(1, 1, n).expand(m, 1, n)
            return -torch.log_softmax(logits, dim=1).gather(1, target).squeeze(1)
        flat = logits.transpose(1, 2).reshape(m * n, c)
        return self.loss.per_sample(flat, y.repeat(m)).view(m, n)

    def loss_gradient(self, sample_weights: Tensor) -> Tensor:
        """delta = d(sum_n w_n l_n)/d logits (M, C, N) for every member; w (M, 1, N)."""
        logits = self.logits
        m, c, n = logits.shape
        if self.fast_ce:
            return torch.softmax(logits, dim=1).sub_(self.onehot_t).mul_(sample_weights)
        with torch.inference_mode(False), torch.enable_grad():   # autograd on the logits only
            flat = logits.transpose(1, 2).reshape(m * n, c).clone().requires_grad_(True)
            values = self.loss.per_sample(flat, self.y.repeat(m))
            weights = sample_weights.reshape(-1).clone()   # a normal tensor autograd may save
            (grad,) = torch.autograd.grad((values * weights).sum(), flat)
        return grad.view(m, n, c).transpose(1, 2)

    def backward_and_update(self, delta: Tensor) -> None:
        torch.mul(self.x_k, delta.unsqueeze(1), out=self.r)
        for g in self.groups:
            mask = g.hidden.sign_()              # A >= 0, so sign(A) = 1[A > 0] = M
            torch.bmm(mask, g.r_t, out=g.q)      # (G, h, KC): the fast orientation for this product
            g.q_dest.copy_(g.q_src)
        torch.sum(self.q * self.w2_1cu, dim=1, out=self.g_w1)
        torch.sum(self.q * self.w1_k1u, dim=0, out=self.g_w2)
        torch.sum(delta, dim=2, keepdim=True, out=self.g_b2)
        self.theta.addcmul_(self.grad, self.neg_lr)

    def parameters(self, member: int) -> dict[str, Tensor]:
        slot = self.slot_of[member]
        cols = slice(self.unit_start[slot], self.unit_start[slot] + self.members[member].width)
        return {"W1": self.w1[:-1, cols].T.clone(), "b1": self.w1[-1, cols].clone(),
                "W2": self.w2[:, cols].clone(), "b2": self.b2[slot, :, 0].clone()}


def _check(members: Sequence[Member], x: Tensor, y: Tensor, num_classes: int, steps: int,
           record_every: int) -> None:
    if not members:
        raise ValueError("members is empty")
    for i, member in enumerate(members):
        if member.width < 1 or not member.lr > 0:
            raise ValueError(f"member {i}: need width >= 1 and lr > 0, got {member}")
        if member.init not in INITS:
            raise ValueError(f"member {i}: init must be one of {INITS}, got {member.init!r}")
        if member.schedule is not None and member.schedule.num_classes != num_classes:
            raise ValueError(f"member {i}: schedule has {member.schedule.num_classes} classes, "
                             f"the data {num_classes}")
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"need x (N, d) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    if steps < 0 or record_every < 1:
        raise ValueError(f"need steps >= 0 and record_every >= 1, got {steps}, {record_every}")


def train(members: Sequence[Member], x: Tensor, y: Tensor, *, steps: int,
          loss: str | losses_module.Loss = "ce", num_classes: int | None = None,
          record_every: int = 100, record_steps: Sequence[int] = (), per_class: bool = False,
          eval_sets: Mapping[str, tuple[Tensor, Tensor]] | None = None,
          callback: Callable[[EnsembleState], Mapping[int, Mapping[str, Any]] | None] | None = None,
          callback_every: int | None = None, callback_steps: Sequence[int] = (),
          dtype: torch.dtype = torch.float64) -> EnsembleRun:
    """Train every member by ``steps`` full-batch GD steps on (x, y); see the module doc.

    Records are taken every ``record_every`` steps, at the steps listed in ``record_steps``
    (e.g. the ends of the schedule's periods) and at the last step.

    History columns: member, width, seed, lr, tag, init, step, ``loss`` (the plain base loss),
    ``weighted_loss`` (with Gamma(step): the F(t) that GD descends), ``acc``; with
    ``per_class`` also ``acc_<c>`` and ``loss_<c>`` per class; per eval set ``<name>_loss`` and
    ``<name>_acc``. ``callback(state)`` runs every ``callback_every`` steps, at the steps in
    ``callback_steps`` and at the last step, and may return {member index: {column: value}},
    collected in ``run.callbacks``.
    """
    loss_fn = losses_module.get(loss) if isinstance(loss, str) else loss
    if not isinstance(loss_fn, losses_module.Loss):
        raise TypeError("loss must be a companion.losses name or Loss (give schedules per member)")
    x = x.to(dtype)
    y = y.to(device=x.device, dtype=torch.long)
    num_classes = int(y.max()) + 1 if num_classes is None else num_classes
    _check(members, x, y, num_classes, steps, record_every)
    engine = _Engine(members, x, y, loss_fn, num_classes, steps, eval_sets or {})
    n = x.shape[0]
    counts = torch.bincount(y, minlength=num_classes).to(dtype).clamp_min(1)
    onehot = engine.onehot_t.T  # (N, C)
    extra_records = {int(s) for s in record_steps}
    records: list[dict[str, Tensor]] = []
    record_steps: list[int] = []
    callback_rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with torch.inference_mode():   # no autograd bookkeeping: it is a fifth of a step's cost
        _run(engine, steps, record_every, extra_records, per_class, callback, callback_every,
             {int(s) for s in callback_steps}, counts, onehot, records, record_steps, callback_rows)
    seconds = time.perf_counter() - start
    history = _history(engine, records, record_steps, num_classes)
    callbacks = pd.DataFrame(callback_rows)
    final = [engine.parameters(i) for i in range(len(engine.members))]
    return EnsembleRun(engine.members, history, callbacks, seconds, steps, final)


def _run(engine: _Engine, steps: int, record_every: int, extra_records: set[int], per_class: bool,
         callback: Callable[[EnsembleState], Mapping[int, Mapping[str, Any]] | None] | None,
         callback_every: int | None, extra_calls: set[int], counts: Tensor, onehot: Tensor,
         records: list[dict[str, Tensor]], record_steps: list[int],
         callback_rows: list[dict[str, Any]]) -> None:
    """The training loop of :func:`train` (appends to records, record_steps, callback_rows)."""
    y, dtype = engine.y, engine.x.dtype
    sample_weights = engine.sample_weights(0)
    for step in range(steps + 1):
        engine.forward()
        last = step == steps
        recording = step % record_every == 0 or last or step in extra_records
        calling = callback is not None and (last or step in extra_calls
                                            or (callback_every and step % callback_every == 0))
        if recording or calling:
            gamma = engine.class_weights(step)
        if recording:
            per_sample = engine.per_sample_loss(engine.logits, y)
            correct = (engine.logits.argmax(dim=1) == y).to(dtype)
            row = {"loss": per_sample.mean(1),
                   "weighted_loss": (per_sample * gamma.index_select(1, y)).mean(1),
                   "acc": correct.mean(1)}
            if per_class:
                row["acc_c"] = (correct @ onehot) / counts
                row["loss_c"] = (per_sample @ onehot) / counts
            for name, (_, ye) in engine.eval_sets.items():
                logits = engine.eval_logits(name)
                row[f"{name}_loss"] = engine.per_sample_loss(logits, ye).mean(1)
                row[f"{name}_acc"] = (logits.argmax(dim=1) == ye).to(dtype).mean(1)
            records.append(row)
            record_steps.append(step)
        if calling:
            with torch.inference_mode(False):   # callbacks may differentiate (Hessians, NTK)
                result = callback(EnsembleState(engine, step, gamma.clone())) or {}
            callback_rows += [{"member": i, "step": step, **values} for i, values in result.items()]
        if last:
            break
        if not engine.constant_weights:
            sample_weights = engine.sample_weights(step)
        engine.backward_and_update(engine.loss_gradient(sample_weights))


def _history(engine: _Engine, records: list[dict[str, Tensor]], steps: list[int],
             num_classes: int) -> pd.DataFrame:
    """The long table: rows (record, member in the caller's order), metadata first."""
    order = np.asarray(engine.member_of_slot)
    columns: dict[str, np.ndarray] = {}
    for key in records[0]:
        stacked = torch.stack([r[key] for r in records]).cpu().numpy()    # (R, M[, C]) by slot
        by_member = np.empty_like(stacked)
        by_member[:, order] = stacked
        if by_member.ndim == 3:
            prefix = key[:-2]  # "acc_c" -> "acc", "loss_c" -> "loss"
            for c in range(num_classes):
                columns[f"{prefix}_{c}"] = by_member[:, :, c].reshape(-1)
        else:
            columns[key] = by_member.reshape(-1)
    count = len(engine.members)
    meta = pd.DataFrame({
        "member": np.tile(np.arange(count), len(steps)),
        "width": np.tile([m.width for m in engine.members], len(steps)),
        "seed": np.tile([m.seed for m in engine.members], len(steps)),
        "lr": np.tile([m.lr for m in engine.members], len(steps)),
        "tag": np.tile([m.tag for m in engine.members], len(steps)),
        "init": np.tile([m.init for m in engine.members], len(steps)),
        "step": np.repeat(steps, count),
    })
    return pd.concat([meta, pd.DataFrame(columns)], axis=1)


def top_hessian_eigenvalue(state: EnsembleState, member: int, x: Tensor, y: Tensor,
                           loss: losses_module.Loss | None = None, tol: float = 1e-3) -> float:
    """lambda_max of the loss member ``member`` descends at ``state.step`` (its Gamma included).

    For a dynamical-loss member this is the Hessian of the weighted loss F(t), the quantity
    whose crossing of 2/lr the dynamical-loss analysis is about. Lanczos over Hessian-vector
    products (``companion.curvature``), on the members' device. ``loss`` defaults to the loss
    the ensemble was trained with.
    """
    from . import curvature

    loss = loss if loss is not None else state._engine.loss
    params = {k: v.requires_grad_(True) for k, v in state.parameters(member).items()}
    gamma = state.class_weights(member)

    def closure() -> Tensor:
        return loss(forward(params, x), y, class_weights=gamma)

    return float(curvature.top_hessian_eigenvalues(closure, list(params.values()),
                                                   method="lanczos", tol=tol)[0])
