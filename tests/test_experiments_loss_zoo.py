"""The loss-zoo recipe (companion.experiments.loss_zoo) against the run spelled out by hand."""

import math
import threading
from dataclasses import replace

import pytest
import torch

from companion import curvature, data, heads, losses, metrics, models, train
from companion.experiments import loss_zoo

TINY = loss_zoo.Config(dataset="digits", arch="mlp", hidden=(16, 16), train_per_class=20, n_test=100, epochs=11,
                       batch_size=50, lr=0.1, weight_decay=5e-4, clip_grad_norm=2.0, collapse=True, seed=3)


def _by_hand(config, loss, plain, model):
    full = data.load("digits", "train", per_class=20, seed=0)
    test = data.load("digits", "test", n=100, seed=0)
    history = train.fit(model, loss, (full.x, full.y), epochs=config.epochs, batch_size=config.batch_size,
                        lr=config.lr, momentum=0.9, weight_decay=config.weight_decay, clip_grad_norm=2.0,
                        eval_sets={"test": (test.x, test.y)}, eval_loss=plain, progress=False, seed=config.seed)
    return full, test, history


@pytest.mark.parametrize("name", ["ce", "focal", "dynamical", "unhinged_pal"])
def test_a_run_is_fit_called_by_hand_with_the_same_initial_weights(name):
    config = replace(TINY, loss=name)
    row = loss_zoo.run(config)
    torch.manual_seed(config.seed)           # the initial network, as torch.manual_seed + build gives it
    model = models.mlp(64, [16, 16], 10)
    if name == "unhinged_pal":
        model = heads.pal(model, seed=config.seed)
        loss, plain = heads.HeadLoss("unhinged", model), losses.get("unhinged")
    elif name == "dynamical":                # the zoo's protocol: 11 equal periods over the run's 44 steps
        schedule = losses.DynamicalWeights(10, amplitude=10.0, period=44 // 11 - 1, total_steps=44)
        loss, plain = losses.DynamicalLoss(losses.get("ce"), schedule), losses.get("ce")
    else:
        loss = plain = losses.get(name, **({"gamma": 3.0} if name == "focal" else {}))
    full, test, history = _by_hand(config, loss, plain, model)
    assert [h["test_acc"] for h in row["history"]] == pytest.approx(history["test_acc"].tolist(), abs=0)
    assert [h["train_loss"] for h in row["history"]] == pytest.approx(history["train_loss"].tolist(), abs=0)
    logits = train.predict(model, test.x)
    assert row["test_acc"] == metrics.accuracy(logits, test.y)
    assert row["ece"] == pytest.approx(metrics.expected_calibration_error(logits, test.y), abs=1e-12)
    features = train.extract_features(model, full.x)
    nc = metrics.neural_collapse(features, full.y, model.classifier.weight, getattr(model.classifier, "bias", None))
    assert row["nc1"] == pytest.approx(nc["nc1"], rel=1e-9)
    assert row["train_acc"] == train.evaluate(model, full.x, full.y, loss_fn=plain)["acc"]
    assert row["steps_per_epoch"] == 4 and row["train_size"] == 200 and row["diverged_epoch"] is None
    if name == "unhinged_pal":               # the head stays frozen
        frozen = heads.pal(models.mlp(64, [16, 16], 10), seed=config.seed).classifier.weight
        assert torch.equal(model.classifier.weight, frozen)


def test_seeded_builds_as_manual_seed_does_and_leaves_the_generator_alone():
    state = torch.random.get_rng_state()
    built = loss_zoo.seeded(7, lambda: models.mlp(64, [16], 10))
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(7)
    reference = models.mlp(64, [16], 10)
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), reference.state_dict().values()))
    # threads that build at once get the same networks as one after another
    results = {}
    threads = [threading.Thread(target=lambda s=s: results.__setitem__(s, loss_zoo.seeded(
        s, lambda: models.mlp(64, [32, 32], 10)).state_dict())) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in range(6):
        torch.manual_seed(s)
        alone = models.mlp(64, [32, 32], 10).state_dict()
        assert all(torch.equal(results[s][k], alone[k]) for k in alone)


def test_init_seed_period_epochs_cosine_warmup_and_the_end_point_hessian():
    config = replace(TINY, loss="dynamical", hidden=(16,), collapse=False, init_seed=10_003, period_epochs=1.0,
                     amplitude=3.0, schedule="cosine", warmup_epochs=1.0, momentum=0.5, weight_decay=0.0,
                     clip_grad_norm=None, epochs=4, hessian_samples=50, hessian_min_train_acc=0.0)
    row = loss_zoo.run(config)
    torch.manual_seed(10_003)
    model = models.mlp(64, [16], 10)
    schedule = losses.DynamicalWeights(10, amplitude=3.0, period=4, total_steps=16)
    full = data.load("digits", "train", per_class=20, seed=0)
    train.fit(model, losses.DynamicalLoss(losses.get("ce"), schedule), (full.x, full.y), epochs=4, batch_size=50,
              lr=0.1, momentum=0.5, schedule="cosine", warmup_epochs=1.0, progress=False, seed=3)
    double = model.double()
    ce = losses.get("ce")
    expected = curvature.top_hessian_eigenvalues(lambda: ce(double(full.x[:50].double()), full.y[:50]),
                                                 list(double.parameters()), method="lanczos", tol=1e-3)[0]
    assert row["lambda_max"] == pytest.approx(float(expected), rel=1e-6)
    assert "nc1" not in row
    skipped = loss_zoo.run(replace(config, hessian_min_train_acc=1.01, epochs=1))
    assert math.isnan(skipped["lambda_max"])


def test_a_diverged_run_has_no_end_metrics_and_configs_are_checked():
    row = loss_zoo.run(replace(TINY, loss="mse", lr=1e6, clip_grad_norm=None, epochs=2))
    assert row["diverged_epoch"] is not None and "test_acc" not in row
    with pytest.raises(ValueError, match="divisible"):
        loss_zoo.run(replace(TINY, loss="dynamical", epochs=3))
    for bad in (dict(loss="hinge"), dict(arch="vgg"), dict(schedule="step"), dict(n_train=10)):
        with pytest.raises(ValueError):
            loss_zoo.Config(**{**dict(train_per_class=None), **bad}) if "n_train" not in bad else \
                loss_zoo.Config(train_per_class=5, n_train=10)
    assert loss_zoo.Config(loss="unhinged_pal").plain_loss == "unhinged"
    assert loss_zoo.Config(loss="rooted_gce", gce_k=2.0).loss_params == {"k": 2.0, "m": 3.0}
