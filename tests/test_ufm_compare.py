"""ufm.compare_losses / ufm.final_state against separate runs, hand-computed margins and norms,
the closed-form CE optimum, and the deep copy of stateful losses."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from companion import losses, metrics, ufm
from companion.theory import nc

K, n, d, LAM = 4, 3, 6, 5e-3
SETTINGS = dict(lambda_w=LAM, lambda_h=LAM, lambda_b=LAM, steps=300, lr=2.0, record_every=100)


def test_final_table_matches_separate_runs_and_hand_computed_quantities():
    table = ufm.compare_losses({"ce": "ce", "ls": losses.get("ls", alpha=0.2)}, K, n, d,
                               seed=[3, 4], **SETTINGS)
    assert list(table.final["name"]) == ["ce", "ce", "ls", "ls"]
    assert set(table.history["name"]) == {"ce", "ls"}
    for name, loss in (("ce", "ce"), ("ls", losses.get("ls", alpha=0.2))):
        for i, s in enumerate([3, 4]):
            alone = ufm.train(loss, K, n, d, seed=s, **SETTINGS)
            torch.testing.assert_close(table.runs[name].W[i], alone.W, rtol=0, atol=0)
            row = table.final[(table.final["name"] == name) & (table.final["seed"] == s)].iloc[0]
            W, H, b = alone.W.numpy(), alone.H.numpy(), alone.b.numpy()
            logits = H.T @ W.T + b
            y = np.repeat(np.arange(K), n)
            target = logits[np.arange(K * n), y]
            others = np.where(np.eye(K, dtype=bool)[y], -np.inf, logits).max(axis=1)
            assert row["margin_mean"] == pytest.approx((target - others).mean(), rel=1e-12)
            assert row["margin_min"] == pytest.approx((target - others).min(), rel=1e-12)
            assert row["w_norm"] == pytest.approx(math.sqrt((W**2).sum() / K), rel=1e-12)
            assert row["h_norm"] == pytest.approx(math.sqrt((H**2).sum() / (K * n)), rel=1e-12)
            assert row["bias_spread"] == pytest.approx(b.max() - b.min(), abs=1e-15)
            assert row["objective"] == pytest.approx(alone.history["objective"].iloc[-1], rel=1e-14)
            expected_nc = metrics.neural_collapse(alone.H.T, alone.labels, alone.W, alone.b)
            assert row["nc2_w"] == pytest.approx(expected_nc["nc2_w"], rel=1e-12)
            assert row["steps"] == 300 and not row["diverged"]


def test_converged_ce_rows_agree_with_the_closed_form_optimum():
    table = ufm.compare_losses({"ce": "ce"}, K, n, d, seed=0, **{**SETTINGS, "steps": 3000})
    row = table.final.iloc[0]
    opt = nc.optimum("ce", K, n, LAM, LAM, LAM)
    assert row["margin_mean"] == pytest.approx(opt.margin, rel=1e-6)
    assert row["margin_max"] - row["margin_min"] < 1e-6
    assert row["w_norm"] ** 2 == pytest.approx(opt.w_norm_sq, rel=1e-6)
    assert row["h_norm"] ** 2 == pytest.approx(opt.h_norm_sq, rel=1e-6)
    assert max(row["nc1"], row["nc2_w"], row["nc2_h"], row["nc3"]) < 1e-5


def test_stateful_losses_are_copied_so_every_run_starts_at_step_zero():
    schedule = losses.DynamicalWeights(K, amplitude=5.0, period=20, total_steps=SETTINGS["steps"])
    dynamical = losses.DynamicalLoss(losses.get("ce"), schedule)
    first = ufm.compare_losses({"dyn": dynamical}, K, n, d, seed=[0], **SETTINGS)
    second = ufm.compare_losses({"dyn": dynamical}, K, n, d, seed=[0], **SETTINGS)
    assert dynamical.step == 0
    pd.testing.assert_frame_equal(first.final, second.final)
    # and the schedule was applied: a plain CE run ends elsewhere
    plain = ufm.compare_losses({"ce": "ce"}, K, n, d, seed=[0], **SETTINGS)
    assert abs(plain.final["objective"].iloc[0] - first.final["objective"].iloc[0]) > 1e-6


def test_final_state_of_a_blown_up_or_non_finite_state():
    labels = ufm.class_major_labels(K, n)
    W = torch.full((1, K, d), 1e200, dtype=torch.float64)
    W[0, 0] *= -1
    H = torch.full((1, d, K * n), 1e-3, dtype=torch.float64)
    b = torch.zeros(1, K, dtype=torch.float64)
    history = pd.DataFrame({"seed": [0], "step": [5], "time": [1.0], "loss": [1.0],
                            "objective": [math.inf], "grad_norm": [1.0]})
    row = ufm.final_state(ufm.UFMResult(W, H, b, labels, history, [0], True)).iloc[0]
    assert row["w_norm"] == pytest.approx(1e200 * math.sqrt(d), rel=1e-12)
    assert row["diverged"] and math.isfinite(row["nc1"])
    H[0, 0, 0] = math.nan
    row = ufm.final_state(ufm.UFMResult(W, H, b, labels, history, [0], True)).iloc[0]
    assert math.isnan(row["nc1"]) and math.isnan(row["nc2_h"])
