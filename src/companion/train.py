"""One training loop for every experiment: ``fit``, plus ``evaluate``, ``predict``, ``extract_features``.

``fit`` is an airbench-style loop: the data are tensors already on the device (uint8 images
or float features), a mini-batch is a slice of a seeded random permutation (``batch_size=None``
is full-batch gradient descent), augmentation and normalization run on the batch on the
device, and nothing else happens between steps. Per iteration: set the learning rate, forward
(bf16 autocast on CUDA for conv nets), loss in float32, backward, optional gradient clipping,
optimizer step, ``loss_fn.advance()`` when the loss is stateful (the dynamical loss). Under
autocast the last layer still runs in float32 (``companion.models.last_layer``) and the loss is
computed outside autocast on float32 logits: the MSE target 15 has bf16 spacing 0.0625, which
would quantize the terminal-phase residual the NC metrics measure. Once per
epoch the running loss is read back (the only host-device sync of an epoch): a non-finite
value stops training cleanly with that epoch's row in the history. At logged epochs the eval
sets are evaluated and the callback (NC metrics, Hessian, NTK ...) adds its columns.
"""

from __future__ import annotations

import bisect
import contextlib
import importlib
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

Tensor = torch.Tensor
LossFn = Callable[[Tensor, Tensor], Tensor]
Transform = Callable[[Tensor], Tensor]

SCHEDULES = ("constant", "step", "cosine")
OPTIMIZERS = ("sgd", "adam")


def lr_schedule(lr: float, schedule: str = "constant", *, epochs: int, steps_per_epoch: int,
                milestones: Sequence[float] = (), lr_decay: float = 0.1,
                warmup_epochs: float = 0) -> Callable[[int], float]:
    """The learning rate of optimizer step ``t`` (0-based), stepped per iteration.

    * ``constant``: lr;
    * ``step``: lr * lr_decay ** (number of milestones, in epochs, already reached);
    * ``cosine``: lr * (1 + cos(pi * s / S)) / 2 with s the steps since the end of warm-up and
      S the steps after it, so it starts at lr and nears 0 at the end of training.

    A linear warm-up over the first ``warmup_epochs`` multiplies the schedule by (t + 1) / W.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if milestones and schedule != "step":
        raise ValueError(f"milestones only apply to schedule='step', not {schedule!r}")
    total = epochs * steps_per_epoch
    warmup = round(warmup_epochs * steps_per_epoch)
    milestone_steps = sorted(round(m * steps_per_epoch) for m in milestones)

    def rate(step: int) -> float:
        factor = min(1.0, (step + 1) / warmup) if warmup else 1.0
        if schedule == "step":
            factor *= lr_decay ** bisect.bisect_right(milestone_steps, step)
        elif schedule == "cosine":
            progress = max(0, step - warmup) / max(1, total - warmup)
            factor *= 0.5 * (1.0 + math.cos(math.pi * progress))
        return lr * factor

    return rate


def _optimizer(name: str, params: list[nn.Parameter], lr: float, momentum: float, nesterov: bool,
               weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov,
                               weight_decay=weight_decay)
    if name == "adam":
        if momentum or nesterov:
            raise ValueError("momentum/nesterov are SGD options; Adam uses its default betas")
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def _fast_path(flag: bool | str, model: nn.Module, device: torch.device) -> bool:
    """Resolve amp/channels_last: "auto" = on for float32 conv nets on CUDA only."""
    if flag != "auto":
        return bool(flag)
    is_conv_net = any(isinstance(m, nn.Conv2d) for m in model.modules())
    is_float32 = all(p.dtype == torch.float32 for p in model.parameters())
    return device.type == "cuda" and is_conv_net and is_float32


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def _full_precision(logits: Tensor) -> Tensor:
    """float32 logits for the loss (bf16/fp16 ones from a model without an fp32 last layer)."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _show_progress(progress: bool | None) -> bool:
    """None: a bar only in an interactive terminal and never under CI (no stderr in notebooks)."""
    if progress is None:
        return not os.environ.get("CI") and sys.stderr.isatty()
    return bool(progress)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train: Any,
    *,
    epochs: int,
    batch_size: int | None = None,
    optimizer: str = "sgd",
    lr: float,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    schedule: str = "constant",
    milestones: Sequence[float] = (),
    lr_decay: float = 0.1,
    warmup_epochs: float = 0,
    clip_grad_norm: float | None = None,
    augment: Transform | None = None,
    preprocess: Transform | None = None,
    eval_sets: Mapping[str, Any] | None = None,
    eval_every: int = 1,
    eval_loss: LossFn | None = None,
    callback: Callable[[int, nn.Module], Mapping[str, Any]] | None = None,
    callback_every: int = 1,
    compile: bool = False,
    amp: bool | str = "auto",
    channels_last: bool | str = "auto",
    progress: bool | None = None,
    seed: int | None = None,
) -> pd.DataFrame:
    """Train ``model`` on ``train`` = (x, y) (a ``companion.data.Dataset`` or a tuple) and return the history.

    The model is moved to ``x``'s device. ``augment`` maps a raw (uint8) batch to an augmented
    one, ``preprocess`` maps it to the float input of the model (float data need neither).
    Only parameters with ``requires_grad`` are optimized (freeze a classifier by turning it
    off). ``seed`` seeds the permutation generator (None: drawn from torch's global RNG, so
    ``companion.repro.setup(seed)`` fixes it). ``eval_sets`` maps a name to (x, y), evaluated
    with ``eval_loss`` (default ``loss_fn``) every ``eval_every`` epochs and at the last one;
    ``callback(epoch, model)`` runs every ``callback_every`` epochs (and at the last) with the
    model in eval mode and returns extra columns. ``amp``/``channels_last`` "auto" turn on bf16
    autocast / channels_last for float32 conv nets on CUDA; ``compile`` wraps the forward in
    ``torch.compile``.

    Returns one row per logged epoch: ``epoch``, ``step`` (optimizer steps so far), ``lr`` (of
    the epoch's last step), ``train_loss`` and ``train_acc`` (over the epoch's batches as they
    were trained, weighted by batch size), ``<name>_loss``, ``<name>_acc``, ``seconds``
    (cumulative training time, evaluation excluded) and the callback's columns. If the training
    loss of an epoch is not finite, that epoch's row (NaN/inf loss) is the last one and
    ``history.attrs["diverged_epoch"]`` names it.
    """
    x, y = train
    device = x.device
    if preprocess is None and not x.is_floating_point():
        raise ValueError(f"x has dtype {x.dtype}: pass preprocess= to turn batches into floats")
    model.to(device)
    use_amp = _fast_path(amp, model, device)
    memory_format = torch.channels_last if _fast_path(channels_last, model, device) else None
    if memory_format is not None:
        model.to(memory_format=memory_format)
    forward = torch.compile(model) if compile else model

    def inputs(xb: Tensor) -> Tensor:
        xb = preprocess(xb) if preprocess is not None else xb
        return xb.contiguous(memory_format=memory_format) if memory_format and xb.ndim == 4 else xb

    params = [p for p in model.parameters() if p.requires_grad]
    opt = _optimizer(optimizer, params, lr, momentum, nesterov, weight_decay)
    n = len(x)
    step_size = n if batch_size is None else min(batch_size, n)
    steps_per_epoch = math.ceil(n / step_size)
    rate = lr_schedule(lr, schedule, epochs=epochs, steps_per_epoch=steps_per_epoch,
                       milestones=milestones, lr_decay=lr_decay, warmup_epochs=warmup_epochs)
    if seed is None:
        if in_side_by_side():
            raise ValueError("fit(seed=None) in a job run side by side draws its batches from the generator "
                             "every thread shares: pass seed=")
        seed = int(torch.randint(0, 2**62, (1,)).item())
    generator = torch.Generator().manual_seed(seed)  # on the CPU: same batches on every device
    advance = getattr(loss_fn, "advance", None)
    eval_loss = eval_loss or loss_fn

    rows: list[dict[str, Any]] = []
    history_attrs: dict[str, Any] = {"steps_per_epoch": steps_per_epoch, "diverged_epoch": None}
    step, seconds = 0, 0.0
    bar = _progress_bar(epochs, _show_progress(progress))
    for epoch in range(1, epochs + 1):
        _stop_if_cancelled()
        started = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.long)
        order = None if batch_size is None else torch.randperm(n, generator=generator).to(device)
        for begin in range(0, n, step_size):
            if order is None:
                xb, yb = x, y
            else:
                index = order[begin:begin + step_size]
                xb, yb = x[index], y[index]
            if augment is not None:
                xb = augment(xb)
            for group in opt.param_groups:
                group["lr"] = rate(step)
            with _autocast(device, use_amp):
                logits = forward(inputs(xb))
            logits = _full_precision(logits)
            loss = loss_fn(logits, yb)  # outside autocast: float32
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(params, clip_grad_norm)
            opt.step()
            if advance is not None:
                advance()
            step += 1
            loss_sum += loss.detach().double() * len(yb)
            correct += (logits.detach().argmax(dim=1) == yb).sum()
        train_loss = loss_sum.item() / n  # syncs: the epoch's time below is complete
        seconds += time.perf_counter() - started
        diverged = not math.isfinite(train_loss)
        eval_due = epoch % eval_every == 0 or epoch == epochs
        callback_due = callback is not None and (epoch % callback_every == 0 or epoch == epochs)
        if eval_due or callback_due or diverged:
            row = {"epoch": epoch, "step": step, "lr": rate(step - 1), "train_loss": train_loss,
                   "train_acc": correct.item() / n, "seconds": seconds}
            if not diverged:  # a NaN model has nothing left to evaluate
                if eval_due and eval_sets:
                    with _autocast(device, use_amp):
                        row.update(_evaluate_sets(forward, eval_sets, eval_loss, inputs))
                if callback_due:
                    model.eval()
                    row.update(callback(epoch, model))
            rows.append(row)
            bar.set_postfix(loss=f"{train_loss:.4g}", refresh=False)
        bar.update()
        if diverged:
            history_attrs["diverged_epoch"] = epoch
            break
    bar.close()
    history = pd.DataFrame(rows)
    history.attrs.update(history_attrs)
    return history


def _evaluate_sets(model: nn.Module, eval_sets: Mapping[str, Any], loss_fn: LossFn,
                   preprocess: Transform) -> dict[str, float]:
    """``<name>_loss`` and ``<name>_acc`` of every eval set."""
    columns = {}
    for name, (x_eval, y_eval) in eval_sets.items():
        result = evaluate(model, x_eval, y_eval, loss_fn, preprocess=preprocess)
        columns[f"{name}_loss"], columns[f"{name}_acc"] = result["loss"], result["acc"]
    return columns


def _progress_bar(epochs: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=epochs, desc="epochs", disable=not enabled, leave=False)


# -- inference -------------------------------------------------------------------------------


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int,
             preprocess: Transform | None, device: torch.device) -> Tensor:
    outputs = []
    for begin in range(0, len(x), batch_size):
        xb = x[begin:begin + batch_size].to(device, non_blocking=True)
        out = fn(preprocess(xb) if preprocess is not None else xb)
        outputs.append(out.float() if out.dtype in (torch.float16, torch.bfloat16) else out)
    return torch.cat(outputs)


def predict(model: nn.Module, x: Tensor, batch_size: int = 1024,
            preprocess: Transform | None = None) -> Tensor:
    """Logits of ``model`` (in eval mode, no grad) on ``x``, on the model's device."""
    with _eval_mode(model):
        return _batched(model, x, batch_size, preprocess, _model_device(model))


def extract_features(model: nn.Module, x: Tensor, batch_size: int = 1024,
                     preprocess: Transform | None = None) -> Tensor:
    """Penultimate features ``model.features(x)`` (eval mode, no grad), on the model's device."""
    features = getattr(model, "_orig_mod", model).features  # also for a torch.compile'd model
    with _eval_mode(model):
        return _batched(features, x, batch_size, preprocess, _model_device(model))


def evaluate(model: nn.Module, x: Tensor, y: Tensor, loss_fn: LossFn | None = None,
             batch_size: int = 1024, preprocess: Transform | None = None) -> dict[str, float]:
    """Accuracy and mean loss (``loss_fn``, default cross-entropy) of ``model`` on (x, y)."""
    logits = predict(model, x, batch_size, preprocess)
    y = y.to(logits.device)
    with torch.no_grad(), torch.autocast(logits.device.type, enabled=False):  # the loss in float32
        loss = loss_fn(logits, y) if loss_fn is not None else F.cross_entropy(logits.float(), y)
    return {"acc": (logits.argmax(dim=1) == y).double().mean().item(), "loss": float(loss)}


# -- side by side ----------------------------------------------------------------------------

_worker = threading.local()  # .cancel: the Event of the side_by_side call this thread works for
_guard_lock = threading.Lock()
_guard_depth = 0
#: torch's seeding functions: each reseeds a generator that every thread shares
_SEEDERS = {"torch": ("manual_seed", "seed"), "torch.random": ("manual_seed", "seed"),
            "torch.cuda": ("manual_seed", "manual_seed_all", "seed", "seed_all"),
            "torch.cuda.random": ("manual_seed", "manual_seed_all", "seed", "seed_all")}
_originals: list[tuple[Any, str, Any]] = []


class Cancelled(RuntimeError):
    """A job run side by side stopped at an epoch boundary because another job failed."""


def in_side_by_side() -> bool:
    """Whether this thread runs a job of :func:`side_by_side` in a worker thread."""
    return getattr(_worker, "cancel", None) is not None


def _stop_if_cancelled() -> None:
    cancel = getattr(_worker, "cancel", None)
    if cancel is not None and cancel.is_set():
        raise Cancelled("stopped: another job run side by side failed")


def _guarded(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def seed(*args: Any, **kwargs: Any) -> Any:
        if in_side_by_side():
            raise RuntimeError(
                f"{name}() in a job run side by side reseeds the generator every thread shares "
                "(the default CUDA generator, torch's CPU generator): seed what the job needs in "
                "the calling thread, or give the job its own torch.Generator(device=...).manual_seed(s) "
                "(fit(seed=...), data.augment(generator=...))")
        return original(*args, **kwargs)

    seed.__wrapped__ = original  # type: ignore[attr-defined]
    return seed


@contextlib.contextmanager
def _seeding_guard() -> Iterator[None]:
    """While jobs run in threads, torch's global seeding functions raise in those threads."""
    global _guard_depth
    with _guard_lock:
        if _guard_depth == 0:
            for module_name, names in _SEEDERS.items():
                module = importlib.import_module(module_name)
                for name in names:
                    original = getattr(module, name, None)
                    if original is not None:
                        _originals.append((module, name, original))
                        setattr(module, name, _guarded(f"{module_name}.{name}", original))
        _guard_depth += 1
    try:
        yield
    finally:
        with _guard_lock:
            _guard_depth -= 1
            if _guard_depth == 0:
                for module, name, original in reversed(_originals):
                    setattr(module, name, original)
                _originals.clear()


def side_by_side(function: Callable[..., Any], jobs: Sequence[Sequence[Any]],
                 workers: int = 1, threads: bool | None = None) -> list[Any]:
    """``[function(*job) for job in jobs]``, with up to ``workers`` runs at once on a GPU.

    Small models leave most of an H100 idle; running several trainings in threads, each on
    its own CUDA stream, overlaps their kernels. Each stream first waits for the work queued
    so far (e.g. the dataset's upload) and is synchronized before its result is returned.
    ``threads=None`` uses threads (and streams) only on a GPU with ``workers > 1``; otherwise,
    or with ``threads=False``, the jobs run one after another in this thread (``threads=True``
    forces threads without CUDA, for tests). Results keep the order of ``jobs``.

    In threads, jobs must not reseed generators that every thread shares: ``torch.manual_seed``
    and the other global seeding functions raise there, as do ``fit(seed=None)`` and
    ``data.augment(generator=None)``; seed in the calling thread (e.g. initial weights), and
    give each job its own ``torch.Generator``. The first job to fail fails the call fast: jobs
    not yet started are dropped, running ones stop at their next epoch (:class:`Cancelled`),
    and its exception is raised here.
    """
    if threads is None:
        threads = torch.cuda.is_available() and workers > 1
    if not threads:
        return [function(*job) for job in jobs]
    streams = torch.cuda.is_available()
    cancel = threading.Event()
    failures: list[BaseException] = []  # the first failure (not a Cancelled) in time
    lock = threading.Lock()

    def run(job: Sequence[Any]) -> Any:
        if cancel.is_set():
            raise Cancelled("not started: another job run side by side failed")
        _worker.cancel = cancel
        try:
            if not streams:
                return function(*job)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                result = function(*job)
            stream.synchronize()
            return result
        except BaseException as exc:
            with lock:
                if not failures and not isinstance(exc, Cancelled):
                    failures.append(exc)
                cancel.set()
            raise
        finally:
            _worker.cancel = None

    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with _seeding_guard():
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        try:
            futures = [pool.submit(run, job) for job in jobs]
            wait(futures, return_when=FIRST_EXCEPTION)
            if cancel.is_set():
                for future in futures:
                    future.cancel()
                wait(futures)  # running jobs stop at their next epoch
                raise failures[0] if failures else Cancelled("a job run side by side was cancelled")
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
