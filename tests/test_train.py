"""The training loop against hand-written updates, independent schedules, and its contracts."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion import losses, models, train


def _blobs(n: int = 120, dim: int = 5, classes: int = 3, seed: int = 0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centers = 3.0 * torch.randn(classes, dim, generator=gen)
    x = centers[y] + torch.randn(n, dim, generator=gen)
    return x.to(dtype), y


class WeightRecorder:
    """Loss = scale * mean of the first logit; records the watched weights after every step.

    With inputs of ones the gradient of the first classifier row is ``scale`` per entry, so with
    plain SGD the weight moves by exactly lr_t * scale per step: the applied learning rate.
    """

    def __init__(self, model: nn.Module, scale: float = 1.0):
        self.weight, self.scale = model.weight, scale
        self.snapshots = [model.weight[0].detach().clone()]

    def __call__(self, logits, targets):
        return self.scale * logits[:, 0].mean()

    def advance(self):
        self.snapshots.append(self.weight[0].detach().clone())

    def steps(self) -> torch.Tensor:
        return -torch.diff(torch.stack(self.snapshots), dim=0)  # (steps, features)


def _ones_problem(n: int = 10, features: int = 1):
    return torch.ones(n, features, dtype=torch.float64), torch.zeros(n, dtype=torch.long)


# -- learning ------------------------------------------------------------------------------


def test_fit_decreases_loss_and_reports_eval_sets():
    torch.manual_seed(0)
    x, y = _blobs()
    model = models.mlp(5, [16], 3)
    history = train.fit(model, losses.get("ce"), (x, y), epochs=8, batch_size=32, lr=0.1,
                        momentum=0.9, eval_sets={"test": (x[:30], y[:30])}, seed=0)
    assert list(history.epoch) == list(range(1, 9))
    assert {"epoch", "step", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"} <= set(history)
    assert history.train_loss.iloc[-1] < history.train_loss.iloc[0] / 3
    assert history.train_acc.iloc[-1] > 0.9 and history.test_acc.iloc[-1] > 0.9
    assert history.step.iloc[-1] == 8 * math.ceil(120 / 32)
    assert history.seconds.is_monotonic_increasing


def test_full_batch_gd_equals_hand_written_loop():
    torch.manual_seed(0)
    x, y = _blobs(dtype=torch.float64)
    model = models.mlp(5, [8], 3, activation="tanh").double()
    reference = copy.deepcopy(model)
    lr, epochs = 0.3, 6
    history = train.fit(model, losses.get("ce"), (x, y), epochs=epochs, lr=lr)

    params = list(reference.parameters())
    hand_losses = []
    for _ in range(epochs):
        loss = F.cross_entropy(reference(x), y)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g
        hand_losses.append(loss.item())
    torch.testing.assert_close(torch.tensor(history.train_loss.to_numpy()), torch.tensor(hand_losses, dtype=torch.float64),
                               rtol=1e-12, atol=0)
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_and_weight_decay_match_the_update_written_out(nesterov):
    torch.manual_seed(1)
    x, y = _blobs(n=30, dtype=torch.float64)
    model = models.mlp(5, [4], 3).double()
    reference = copy.deepcopy(model)
    lr, mu, wd, steps = 0.2, 0.9, 0.05, 3
    train.fit(model, losses.get("ce"), (x, y), epochs=steps, lr=lr, momentum=mu, nesterov=nesterov,
              weight_decay=wd)

    params = list(reference.parameters())
    buffers = [None] * len(params)
    for _ in range(steps):
        grads = torch.autograd.grad(F.cross_entropy(reference(x), y), params)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                d = g + wd * p  # coupled L2 weight decay
                buffers[i] = d.clone() if buffers[i] is None else mu * buffers[i] + d
                p -= lr * (d + mu * buffers[i] if nesterov else buffers[i])
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-14)


def test_adam_matches_the_update_written_out():
    torch.manual_seed(2)
    x, y = _blobs(n=30, dtype=torch.float64)
    model = models.mlp(5, [4], 3).double()
    reference = copy.deepcopy(model)
    lr, wd, steps, b1, b2, eps = 0.01, 0.01, 3, 0.9, 0.999, 1e-8
    train.fit(model, losses.get("ce"), (x, y), epochs=steps, optimizer="adam", lr=lr, weight_decay=wd)

    params = list(reference.parameters())
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    for t in range(1, steps + 1):
        grads = torch.autograd.grad(F.cross_entropy(reference(x), y), params)
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                g = g + wd * p
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                p -= lr * (m[i] / (1 - b1**t)) / ((v[i] / (1 - b2**t)).sqrt() + eps)
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-13)


# -- schedules, clipping, hooks ------------------------------------------------------------

# 10 samples, batch 4 -> 3 steps per epoch (4, 4, 2), 4 epochs -> 12 steps
LR = 0.1
SCHEDULE_CASES = {
    "constant": (dict(), [LR] * 12),
    "step": (dict(schedule="step", milestones=(1, 3), lr_decay=0.1),
             [LR] * 3 + [LR * 0.1] * 6 + [LR * 0.01] * 3),
    "cosine": (dict(schedule="cosine"), [LR * 0.5 * (1 + math.cos(math.pi * t / 12)) for t in range(12)]),
    "cosine+warmup": (dict(schedule="cosine", warmup_epochs=1),
                      [LR * (t + 1) / 3 for t in range(3)]
                      + [LR * 0.5 * (1 + math.cos(math.pi * s / 9)) for s in range(9)]),
    "step+warmup": (dict(schedule="step", milestones=(3,), lr_decay=0.5, warmup_epochs=2),
                    [LR * (t + 1) / 6 for t in range(6)] + [LR] * 3 + [LR * 0.5] * 3),
}


@pytest.mark.parametrize("case", sorted(SCHEDULE_CASES))
def test_schedules_apply_the_expected_learning_rate_each_step(case):
    options, expected = SCHEDULE_CASES[case]
    model = nn.Linear(1, 2, bias=False).double()
    recorder = WeightRecorder(model)
    history = train.fit(model, recorder, _ones_problem(), epochs=4, batch_size=4, lr=LR, **options)
    applied = recorder.steps()[:, 0]
    torch.testing.assert_close(applied, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-15)
    # the history's lr is the epoch's last step
    assert history.lr.tolist() == pytest.approx([expected[3 * e + 2] for e in range(4)], rel=1e-12)


def test_clipping_bounds_the_gradient_norm():
    scale, lr, max_norm = 100.0, 0.01, 1.0

    def update_norms(clip):
        model = nn.Linear(3, 2, bias=False).double()
        recorder = WeightRecorder(model, scale=scale)
        train.fit(model, recorder, _ones_problem(features=3), epochs=2, batch_size=5, lr=lr,
                  clip_grad_norm=clip)
        return recorder.steps().norm(dim=1) / lr  # the norm of the gradient that was applied

    torch.testing.assert_close(update_norms(None), torch.full((4,), scale * math.sqrt(3), dtype=torch.float64))
    torch.testing.assert_close(update_norms(max_norm), torch.full((4,), max_norm, dtype=torch.float64),
                               rtol=1e-6, atol=0)


def test_advance_is_called_once_per_optimizer_step():
    class Counting:
        calls = 0

        def __call__(self, logits, targets):
            return F.cross_entropy(logits, targets)

        def advance(self):
            self.calls += 1

    x, y = _blobs(n=10)
    for batch_size, expected in [(4, 3 * 3), (None, 3)]:
        counting = Counting()
        train.fit(models.mlp(5, 4, 3), counting, (x, y), epochs=3, batch_size=batch_size, lr=0.1)
        assert counting.calls == expected
    dynamical = losses.DynamicalLoss(losses.get("ce"), losses.DynamicalWeights(3, amplitude=5, period=2))
    train.fit(models.mlp(5, 4, 3), dynamical, (x, y), epochs=3, batch_size=4, lr=0.1)
    assert dynamical.step == 9


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_nonfinite_loss_stops_training_cleanly(bad):
    class BreaksAtStep7:
        step = 0

        def __call__(self, logits, targets):
            loss = F.cross_entropy(logits, targets)
            return loss * bad if self.step >= 7 else loss

        def advance(self):
            self.step += 1

    x, y = _blobs(n=10)
    history = train.fit(models.mlp(5, 4, 3), BreaksAtStep7(), (x, y), epochs=6, batch_size=4, lr=0.1,
                        eval_every=2, eval_sets={"test": (x, y)})
    # step 7 is the second step of epoch 3 (3 steps per epoch): rows at epoch 2 and 3, then stop
    assert history.epoch.tolist() == [2, 3]
    assert history.attrs["diverged_epoch"] == 3
    assert math.isfinite(history.train_loss.iloc[0])
    assert not math.isfinite(history.train_loss.iloc[1])
    assert math.isnan(history.test_loss.iloc[1])  # not evaluated


def test_the_unhinged_loss_diverging_is_recorded_not_raised():
    torch.manual_seed(0)
    x, y = _blobs(n=40)
    history = train.fit(models.mlp(5, 8, 3), losses.get("unhinged"), (x, y), epochs=50, batch_size=10,
                        lr=1e37, eval_sets={"train": (x, y)})
    epoch = history.attrs["diverged_epoch"]
    assert epoch is not None and epoch < 50
    assert history.epoch.iloc[-1] == epoch and not math.isfinite(history.train_loss.iloc[-1])


def _tiny_conv_run(seed: int):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8, generator=gen)
    y = torch.arange(24) % 4
    model = models.myrtle(num_classes=4, channels=4)

    def flip_half(batch):  # random, from the global RNG that the seed fixes
        return torch.where(torch.rand(len(batch), 1, 1, 1) < 0.5, batch.flip(3), batch)

    history = train.fit(model, losses.get("ce"), (x, y), epochs=3, batch_size=8, lr=0.05, momentum=0.9,
                        augment=flip_half, preprocess=lambda b: b.float() / 255 - 0.5,
                        eval_sets={"test": (x[:8], y[:8])})
    return history.drop(columns="seconds"), torch.cat([p.detach().flatten() for p in model.parameters()])


def test_fit_is_deterministic_on_cpu_for_a_fixed_seed():
    first, params_first = _tiny_conv_run(seed=0)
    second, params_second = _tiny_conv_run(seed=0)
    assert first.equals(second)
    assert torch.equal(params_first, params_second)
    other, params_other = _tiny_conv_run(seed=1)
    assert not torch.equal(params_first, params_other)


def test_eval_and_callback_schedules():
    seen = []

    def callback(epoch, model):
        seen.append((epoch, model.training))
        return {"weight_norm": model.classifier.weight.norm().item()}

    x, y = _blobs(n=20)
    history = train.fit(models.mlp(5, 4, 3, batchnorm=True), losses.get("ce"), (x, y), epochs=5,
                        batch_size=8, lr=0.1, eval_sets={"val": (x, y)}, eval_every=2,
                        callback=callback, callback_every=3)
    assert history.epoch.tolist() == [2, 3, 4, 5]
    assert history.val_acc.isna().tolist() == [False, True, False, False]
    assert history.weight_norm.isna().tolist() == [True, False, True, False]
    assert seen == [(3, False), (5, False)]


def test_frozen_parameters_are_not_trained():
    model = models.mlp(5, 4, 3)
    model.classifier.requires_grad_(False)
    before = copy.deepcopy(model)
    train.fit(model, losses.get("ce"), _blobs(n=20), epochs=2, batch_size=8, lr=0.5, weight_decay=0.1)
    assert torch.equal(model.classifier.weight, before.classifier.weight)
    assert not torch.equal(model.body[1].weight, before.body[1].weight)


def test_uint8_images_need_preprocess_and_run_with_explicit_amp_and_channels_last():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(16) % 2
    model = models.myrtle(num_classes=2, channels=4)
    with pytest.raises(ValueError, match="preprocess"):
        train.fit(model, losses.get("ce"), (x, y), epochs=1, lr=0.1)
    history = train.fit(model, losses.get("ce"), (x, y), epochs=2, batch_size=8, lr=0.1,
                        preprocess=lambda b: b.float() / 255, amp=True, channels_last=True)
    assert history.train_loss.map(math.isfinite).all()
    assert model.body[0].weight.is_contiguous(memory_format=torch.channels_last)


def test_fast_path_auto_is_for_float32_conv_nets_on_cuda():
    conv, dense = models.myrtle(channels=4), models.mlp(4, 4, 2)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert train._fast_path("auto", conv, cuda) and not train._fast_path("auto", conv, cpu)
    assert not train._fast_path("auto", dense, cuda)
    assert not train._fast_path("auto", copy.deepcopy(conv).double(), cuda)
    assert train._fast_path(True, dense, cpu) and not train._fast_path(False, conv, cuda)


def test_evaluate_predict_and_features_against_direct_computation():
    torch.manual_seed(0)
    x, y = _blobs(n=50)
    model = models.mlp(5, [6], 3, batchnorm=True)
    model.train()
    with torch.no_grad():
        model.eval()
        logits, features = model(x), model.features(x)
        model.train()
    torch.testing.assert_close(train.predict(model, x, batch_size=7), logits)
    torch.testing.assert_close(train.extract_features(model, x, batch_size=7), features)
    result = train.evaluate(model, x, y, batch_size=7)
    assert result["acc"] == pytest.approx((logits.argmax(1) == y).double().mean().item())
    assert result["loss"] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    mse = train.evaluate(model, x, y, losses.get("mse", scale=2.0), batch_size=7)
    assert mse["loss"] == pytest.approx(F.mse_loss(logits, 2.0 * F.one_hot(y, 3).float()).item(), rel=1e-6)
    assert model.training  # mode restored
    scaled = train.predict(model, x * 2, preprocess=lambda b: b / 2)
    torch.testing.assert_close(scaled, logits)


def test_argument_validation():
    x, y = _blobs(n=10)
    with pytest.raises(ValueError, match="optimizer"):
        train.fit(models.mlp(5, 4, 3), losses.get("ce"), (x, y), epochs=1, lr=0.1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="schedule"):
        train.fit(models.mlp(5, 4, 3), losses.get("ce"), (x, y), epochs=1, lr=0.1, schedule="linear")
    with pytest.raises(ValueError, match="milestones"):
        train.fit(models.mlp(5, 4, 3), losses.get("ce"), (x, y), epochs=1, lr=0.1, schedule="cosine",
                  milestones=(1,))
    with pytest.raises(ValueError, match="Adam"):
        train.fit(models.mlp(5, 4, 3), losses.get("ce"), (x, y), epochs=1, lr=0.1, optimizer="adam",
                  momentum=0.9)


def test_side_by_side_keeps_job_order_and_equals_sequential_runs():
    def job(seed, width):
        torch.manual_seed(seed)
        model = models.mlp(4, [width], 3)
        x = torch.randn(30, 4, generator=torch.Generator().manual_seed(seed))
        y = torch.arange(30) % 3
        train.fit(model, losses.get("ce"), (x, y), epochs=3, lr=0.1, progress=False, seed=seed)
        return seed, width, float(model(x).detach().sum())

    jobs = [(0, 5), (1, 8), (2, 3)]
    assert train.side_by_side(job, jobs, workers=3) == [job(*j) for j in jobs]
    with pytest.raises(ValueError, match="boom"):
        train.side_by_side(lambda: (_ for _ in ()).throw(ValueError("boom")), [()], workers=2)
