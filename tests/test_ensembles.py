"""ensembles.train against a plain per-network autograd loop (same init, loss, schedule, lr)."""

import math

import numpy as np
import pytest
import torch

from companion import ensembles, losses, metrics
from companion.ensembles import Member

C = 3


def toy_data(points_per_class=20, seed=0):
    """A small noisy 3-arm spiral (the exact generator does not matter here)."""
    rng = np.random.default_rng(seed)
    r = np.tile(np.linspace(0.05, 1, points_per_class), C)
    arm = np.repeat(np.arange(C), points_per_class)
    theta = 2 * math.pi * arm / C + 3 * r + 0.3 * rng.standard_normal(r.size)
    x = np.c_[r * np.cos(theta), r * np.sin(theta)]
    return torch.from_numpy(x), torch.from_numpy(arm)


def plain_loop(member, x, y, steps, base, record_every, snapshot_every=None):
    """One network, written out: autograd through relu(x W1^T + b1) W2^T + b2, p -= lr grad."""
    params = ensembles.init_parameters(x.shape[1], member.width, C, member.seed, init=member.init)
    params = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    fn = base if member.schedule is None else losses.DynamicalLoss(base, member.schedule)
    rows, snapshots = [], {}
    for step in range(steps + 1):
        logits = torch.relu(x @ params["W1"].T + params["b1"]) @ params["W2"].T + params["b2"]
        if snapshot_every and (step % snapshot_every == 0 or step == steps):
            snapshots[step] = {k: v.detach().clone() for k, v in params.items()}
        if step % record_every == 0 or step == steps:
            with torch.no_grad():
                rows.append((step, base(logits, y).item(), fn(logits, y).item(),
                             (logits.argmax(1) == y).double().mean().item()))
        if step == steps:
            break
        grads = torch.autograd.grad(fn(logits, y), list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p -= member.lr * g
        if member.schedule is not None:
            fn.advance()
    return np.array(rows), {k: v.detach() for k, v in params.items()}, snapshots


def mixed_members(steps):
    fast = losses.DynamicalWeights(C, amplitude=20, period=30, total_steps=steps)
    slow = losses.DynamicalWeights(C, amplitude=5, period=50, total_steps=steps, last_period_plain=False)
    return [Member(width=7, seed=0, lr=1.0, schedule=fast, tag="DL"),
            Member(width=3, seed=1, lr=0.5, tag="CE"),
            Member(width=7, seed=2, lr=1.0, tag="CE"),
            Member(width=12, seed=0, lr=2.0, schedule=slow, tag="DL"),
            Member(width=7, seed=0, lr=1.0, schedule=fast, tag="DL2"),
            # differs from `fast` only in the first emphasized class: must get its own weights
            Member(width=7, seed=0, lr=1.0, tag="DL3",
                   schedule=losses.DynamicalWeights(C, amplitude=20, period=30, total_steps=steps, start_class=1)),
            Member(width=7, seed=2, lr=1.0, schedule=fast, tag="DL", init="glorot")]  # nonzero b1, b2


@pytest.mark.parametrize("loss_name,params", [("ce", {}), ("focal", {"gamma": 2.0}), ("mse", {"scale": 1.0})])
def test_every_member_follows_its_plain_loop(loss_name, params):
    x, y = toy_data()
    steps, every = 120, 10
    members = mixed_members(steps)
    base = losses.get(loss_name, **params)
    run = ensembles.train(members, x, y, steps=steps, loss=base, record_every=every)
    assert list(run.history.columns[:7]) == ["member", "width", "seed", "lr", "tag", "init", "step"]
    for i, member in enumerate(members):
        rows, final, _ = plain_loop(member, x, y, steps, base, every)
        mine = run.history[run.history.member == i]
        np.testing.assert_array_equal(mine.step, rows[:, 0])
        np.testing.assert_allclose(mine.loss, rows[:, 1], rtol=1e-11, atol=1e-13)
        np.testing.assert_allclose(mine.weighted_loss, rows[:, 2], rtol=1e-11, atol=1e-13)
        np.testing.assert_array_equal(mine.acc, rows[:, 3])
        for key, value in run.parameters(i).items():
            torch.testing.assert_close(value, final[key], rtol=1e-10, atol=1e-12)
    # identical settings give identical networks, whatever else is in the ensemble
    for key in final:
        torch.testing.assert_close(run.parameters(0)[key], run.parameters(4)[key], rtol=0, atol=0)


def test_long_dynamical_run_stays_on_the_plain_trajectory():
    """The paper's regime (lr 1, A = 70): 600 steps across a class switch, still ~1e-12 apart."""
    x, y = toy_data(30)
    steps = 600
    schedule = losses.DynamicalWeights(C, amplitude=70, period=200, total_steps=steps)
    members = [Member(width=20, seed=3, schedule=schedule), Member(width=20, seed=3)]
    run = ensembles.train(members, x, y, steps=steps, record_every=50)
    for i, member in enumerate(members):
        rows, final, _ = plain_loop(member, x, y, steps, losses.get("ce"), 50)
        np.testing.assert_allclose(run.history[run.history.member == i].weighted_loss, rows[:, 2], rtol=1e-10)
        for key, value in run.parameters(i).items():
            torch.testing.assert_close(value, final[key], rtol=1e-9, atol=1e-11)


def test_per_class_metrics_eval_sets_and_callback():
    x, y = toy_data()
    x_val, y_val = toy_data(15, seed=1)
    steps = 60
    schedule = losses.DynamicalWeights(C, amplitude=10, period=20, total_steps=steps)
    members = [Member(width=5, seed=0, schedule=schedule), Member(width=9, seed=1, lr=0.3)]
    seen = []

    def callback(state):
        seen.append((state.step, {i: state.parameters(i) for i in range(2)},
                     state.class_weights(0)))
        return {0: {"norm_w2": state.parameters(0)["W2"].norm().item()}}

    run = ensembles.train(members, x, y, steps=steps, record_every=20, record_steps=[7, 21, 99],
                          per_class=True, eval_sets={"val": (x_val, y_val)}, callback=callback,
                          callback_every=25, callback_steps=[26, 51])
    assert [s for s, _, _ in seen] == [0, 25, 26, 50, 51, 60]
    assert sorted(set(run.history.step)) == [0, 7, 20, 21, 40, 60]
    assert list(run.callbacks.columns) == ["member", "step", "norm_w2"]
    base = losses.get("ce")
    for i, member in enumerate(members):
        _, final, snapshots = plain_loop(member, x, y, steps, base, 20, snapshot_every=1)
        for step, params, gamma in seen:
            for key in params[i]:
                torch.testing.assert_close(params[i][key], snapshots[step][key], rtol=1e-11, atol=1e-13)
            torch.testing.assert_close(gamma, schedule.weights(step))
        last = run.history[(run.history.member == i) & (run.history.step == steps)].iloc[0]
        logits = ensembles.forward(final, x)
        per_class = metrics.per_class_accuracy(logits, y, C)
        np.testing.assert_allclose([last[f"acc_{c}"] for c in range(C)], per_class, rtol=1e-12)
        per_sample = losses.get("ce", reduction="none")(logits, y)
        np.testing.assert_allclose([last[f"loss_{c}"] for c in range(C)],
                                   [per_sample[y == c].mean().item() for c in range(C)], rtol=1e-10)
        val_logits = ensembles.forward(final, x_val)
        assert last["val_acc"] == metrics.accuracy(val_logits, y_val)
        assert last["val_loss"] == pytest.approx(base(val_logits, y_val).item(), rel=1e-10)
    summary = run.summary()
    assert list(summary.member) == [0, 1]
    assert (summary.best_acc >= summary.final_acc).all()


def test_initialization_is_the_papers():
    params = ensembles.init_parameters(2, 20_000, 3, seed=5)
    assert params["W1"].shape == (20_000, 2) and params["W2"].shape == (3, 20_000)
    assert params["W1"].std().item() == pytest.approx(1 / math.sqrt(2), rel=0.02)
    assert params["W2"].std().item() == pytest.approx(1 / math.sqrt(20_000), rel=0.02)
    assert params["b1"].abs().max() == 0 and params["b2"].abs().max() == 0
    gen = torch.Generator().manual_seed(5)
    torch.testing.assert_close(params["W1"], torch.randn(20_000, 2, generator=gen, dtype=torch.float64) / math.sqrt(2))
    again = ensembles.init_parameters(2, 20_000, 3, seed=5)
    assert all(torch.equal(params[k], again[k]) for k in params)
    assert not torch.equal(params["W1"], ensembles.init_parameters(2, 20_000, 3, seed=6)["W1"])


def test_glorot_initialization_is_the_updated_notebooks():
    """jax's glorot_normal (variance_scaling(1, fan_avg, truncated_normal)) and normal(1e-2) biases,
    checked against scipy's truncated normal."""
    from scipy import stats

    params = ensembles.init_parameters(2, 20_000, 3, seed=5, init="glorot")
    for key, fan_in, fan_out in (("W1", 2, 20_000), ("W2", 20_000, 3)):
        w = params[key].numpy().ravel()
        sd = math.sqrt(2 / (fan_in + fan_out))
        assert w.std() == pytest.approx(sd, rel=0.02)
        bound = 2 * sd / stats.truncnorm(-2, 2).std()  # the truncation at 2 sd of the unscaled normal
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
        assert stats.kstest(w / (sd / stats.truncnorm(-2, 2).std()), stats.truncnorm(-2, 2).cdf).pvalue > 1e-3
    assert params["b1"].std().item() == pytest.approx(0.01, rel=0.03) and params["b2"].abs().max() > 0
    again = ensembles.init_parameters(2, 20_000, 3, seed=5, init="glorot")
    assert all(torch.equal(params[k], again[k]) for k in params)
    with pytest.raises(ValueError, match="init"):
        ensembles.init_parameters(2, 3, 3, seed=0, init="he")


def test_to_module_computes_forward():
    x, _ = toy_data()
    params = ensembles.init_parameters(2, 11, 3, seed=0)
    params["b1"] += 0.3
    module = ensembles.to_module(params)
    torch.testing.assert_close(module(x), ensembles.forward(params, x))
    assert sum(p.numel() for p in module.parameters()) == 11 * 2 + 11 + 3 * 11 + 3


def test_invalid_arguments_are_refused():
    x, y = toy_data()
    with pytest.raises(ValueError, match="empty"):
        ensembles.train([], x, y, steps=1)
    with pytest.raises(ValueError, match="lr"):
        ensembles.train([Member(width=3, lr=0.0)], x, y, steps=1)
    with pytest.raises(ValueError, match="classes"):
        ensembles.train([Member(width=3, schedule=losses.DynamicalWeights(4, 2.0, 10))], x, y, steps=1)
    with pytest.raises(TypeError):
        ensembles.train([Member(width=3)], x, y, steps=1,
                        loss=losses.DynamicalLoss(losses.get("ce"), losses.DynamicalWeights(3, 2.0, 10)))


@pytest.mark.parametrize("loss_name,params", [("ce", {}), ("focal", {"gamma": 2.0})])
def test_top_hessian_eigenvalue_matches_the_dense_hessian_of_the_weighted_loss(loss_name, params):
    """By default, of the loss the ensemble trains with (focal here too), its Gamma included."""
    base = losses.get(loss_name, **params)
    x, y = toy_data(8)
    schedule = losses.DynamicalWeights(C, amplitude=20, period=10, total_steps=40)
    member = Member(width=4, seed=3, lr=1.0, schedule=schedule, tag="DL")
    seen = {}

    def callback(state):
        seen[state.step] = (ensembles.top_hessian_eigenvalue(state, 0, x, y, tol=1e-10),
                            state.parameters(0), state.class_weights(0))

    ensembles.train([member], x, y, steps=12, loss=base, callback=callback, callback_steps=[5])
    value, params, gamma = seen[5]
    assert gamma.max() > 1.5  # the weighted loss really differs from plain CE here
    names = list(params)
    shapes = [params[k].shape for k in names]
    flat = torch.cat([params[k].reshape(-1) for k in names])

    def weighted_loss(vector):
        parts = dict(zip(names, torch.split(vector, [s.numel() for s in shapes])))
        parts = {k: v.reshape(s) for (k, v), s in zip(parts.items(), shapes)}
        return base(ensembles.forward(parts, x), y, class_weights=gamma)

    dense = torch.autograd.functional.hessian(weighted_loss, flat)
    assert value == pytest.approx(torch.linalg.eigvalsh(dense)[-1].item(), rel=1e-6)
