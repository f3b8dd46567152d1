"""The recipe of the unhinged paper's network runs (companion.experiments.prototype_heads)."""


import numpy as np
import pytest
import torch

from companion import data, metrics, runs
from companion.experiments import prototype_heads as ph


def test_a_frozen_head_stays_its_etf_and_the_row_is_plain_data():
    row = ph.run(ph.Config(loss="unhinged", head="pal", epochs=1, eval_train=True))
    assert row["classifier_unchanged"] is True and row["etf_gram_error"] < 1e-6
    assert row["diverged_epoch"] is None and 0.0 <= row["test_acc"] <= 1.0
    assert [h["epoch"] for h in row["history"]] == [1]
    assert {"test_acc", "train_eval_loss", "h_norm", "norm_ratio"} <= set(row["history"][0])
    assert row["train_size"] == len(data.load("digits", "train").y)
    assert ph.run(ph.Config(epochs=1))["classifier_unchanged"] is None  # learned head


def test_same_config_same_row_and_runs_map_keeps_the_order():
    configs = [ph.Config(epochs=1, seed=1), ph.Config(epochs=1, seed=2)]
    rows = runs.map(ph.run, configs)
    assert rows[0]["test_acc"] == ph.run(configs[0])["test_acc"]
    assert [r["config"]["seed"] for r in rows] == [1, 2]


def test_held_out_classes_imbalance_and_ood_scores():
    row = ph.run(ph.Config(epochs=1, classes=6, ood="held-out", imbalance="exp", ratio=10.0))
    test = data.load("digits", "test")
    assert row["test_size"] == int((test.y < 6).sum()) and row["ood_size"] == int((test.y >= 6).sum())
    assert len(row["per_class_acc"]) == 6
    assert set(row["ood"]) == {"softmax", "energy", "feature norm"}
    assert set(row["ood"]["energy"]) == {"fpr95", "auroc", "aupr"}
    train = data.load("digits", "train")
    counts = np.bincount(train.y[train.y < 6].numpy(), minlength=6)
    assert row["train_size"] < counts.sum() and row["train_size"] >= counts.min()


def test_ece_bootstrap_se():
    y = torch.arange(4).repeat(50)
    sure = torch.nn.functional.one_hot(y, 4).double() * 50.0       # right and certain: ECE 0, no spread
    assert ph._ece_bootstrap_se(sure, y, 15) == pytest.approx(0.0, abs=1e-12)
    logits = torch.randn(200, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    se = ph._ece_bootstrap_se(logits, y, 15)
    assert 0.0 < se < metrics.expected_calibration_error(logits, y, bins=15)


def test_config_is_checked():
    with pytest.raises(ValueError):
        ph.Config(dataset="mnist")
    with pytest.raises(ValueError):
        ph.Config(ood="held-out")


def test_resources_digits_on_a_cpu_resnet_on_a_gpu():
    assert runs.resources_of(ph.Config()).gpus == 0.0
    assert runs.resources_of(ph.Config(dataset="cifar10")).gpus == 1.0
