"""The nc_loss-protocol recipe (companion.experiments.nc_protocol) against direct computations."""

import math
from dataclasses import replace

import pytest
import torch

from companion import data, losses, metrics, train
from companion.experiments import nc_protocol

TINY = nc_protocol.Config(dataset="digits", arch="mlp", width=0.125, train_per_class=20, n_test=100, epochs=3,
                          batch_size=50, lr=0.1, weight_decay=1e-2)


def test_epoch_zero_metrics_are_those_of_the_initial_network_and_every_loss_starts_there():
    config = replace(TINY, nc_every=2, nc_per_class=10, eval_every=2)
    rows = [nc_protocol.run(replace(config, loss=loss)) for loss in nc_protocol.LOSSES]
    start = rows[0]["history"][0]
    assert [h["epoch"] for h in rows[0]["history"]] == [0, 2, 3]  # initialization, every 2 epochs, the last
    for row in rows[1:]:  # same initialization for every loss of a seed
        assert row["history"][0]["nc1"] == pytest.approx(start["nc1"], rel=1e-12)
    # an independent computation at initialization: build, pick the NC subset, measure
    full = data.load("digits", "train", per_class=20, seed=0)
    keep = sorted(data.subset_indices(full.y.numpy(), per_class=10, seed=0))
    model = nc_protocol.build(config, 64, 10)
    features = train.extract_features(model, full.x[keep])
    expected = metrics.neural_collapse(features, full.y[keep], model.classifier.weight, model.classifier.bias)
    for key in ("nc1", "nc2_w", "nc2_h", "nc3", "nc4", "wmu_b"):
        assert start[key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12), key
    assert rows[0]["nc_size"] == 100 and rows[0]["feature_dim"] == 16 and rows[0]["diverged_epoch"] is None


def test_best_validation_checkpoint_and_the_official_schedule():
    row = nc_protocol.run(replace(TINY, val_fraction=0.1, epochs=7))
    history = [h for h in row["history"] if "val_acc" in h]
    best = max(history, key=lambda h: h["val_acc"])  # the first best on ties, as idxmax
    assert row["best_epoch"] == best["epoch"] and row["best_val_test_acc"] == best["test_acc"]
    assert row["train_size"] + row["val_size"] == 200 and row["val_size"] == 20
    assert nc_protocol.Config(epochs=40).milestones == (17, 28)  # int(3/7 * 40), int(5/7 * 40)
    lrs = [h["lr"] for h in row["history"]]
    assert lrs[2] == pytest.approx(0.1) and lrs[3] == pytest.approx(0.01) and lrs[-1] == pytest.approx(0.001)


def test_the_run_trains_as_fit_does_with_the_protocol():
    """One run equals companion.train.fit called directly with the official protocol."""
    row = nc_protocol.run(replace(TINY, loss="focal"))
    full = data.load("digits", "train", per_class=20, seed=0)
    test = data.load("digits", "test", n=100, seed=0)
    model = nc_protocol.build(replace(TINY, loss="focal"), 64, 10)
    history = train.fit(model, losses.get("focal", gamma=3.0), (full.x, full.y), epochs=3, batch_size=50, lr=0.1,
                        momentum=0.9, weight_decay=1e-2, schedule="step", milestones=(1, 2), clip_grad_norm=2.0,
                        eval_sets={"test": (test.x, test.y)}, progress=False, seed=0)
    assert [h["test_acc"] for h in row["history"]] == pytest.approx(history["test_acc"].tolist(), abs=0)
    assert math.isnan(nc_protocol.run(replace(TINY, lr=1e30, epochs=2, val_fraction=0.1))["best_val_test_acc"])


def test_configs_are_checked():
    with pytest.raises(ValueError):
        nc_protocol.Config(arch="vgg")
    with pytest.raises(ValueError):
        nc_protocol.Config(loss="hinge")
    with pytest.raises(ValueError):
        nc_protocol.Config(val_fraction=1.0)
    assert torch.equal(nc_protocol.build(TINY, 64, 10).classifier.weight, nc_protocol.build(TINY, 64, 10).classifier.weight)
