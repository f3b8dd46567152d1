"""companion.quantize: known grids, brute-force nearest grid points, and whole-model copies."""

import numpy as np
import pytest
import torch
from torch import nn

from companion import quantize


def test_symmetric_per_tensor_known_values():
    w = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0])
    # 3 bits: levels -3..3, scale 1/3; -1.5 is a tie and rounds to the even -2
    torch.testing.assert_close(quantize.quantize_tensor(w, 3, per_channel=False),
                               torch.tensor([-1.0, -2 / 3, 0.0, 1 / 3, 1.0]))
    # 2 bits: the ternary grid {-1, 0, 1} * max|w|
    torch.testing.assert_close(quantize.quantize_tensor(w, 2, per_channel=False),
                               torch.tensor([-1.0, 0.0, 0.0, 0.0, 1.0]))


def test_symmetric_per_channel_known_values():
    w = torch.tensor([[1.0, 0.5], [10.0, -2.6]])
    expected = torch.tensor([[1.0, 2 / 3], [10.0, -10 / 3]])
    torch.testing.assert_close(quantize.quantize_tensor(w, 3, per_channel=True), expected)
    # per tensor, the small row collapses onto the coarse grid of the large one
    torch.testing.assert_close(quantize.quantize_tensor(w, 3, per_channel=False),
                               torch.tensor([[0.0, 0.0], [10.0, -10 / 3]]))


def test_asymmetric_known_values():
    w = torch.tensor([-1.0, 0.0, 0.5, 2.0])
    # scale (2 - (-1)) / 3 = 1, zero point 1; 0.5 is a tie and rounds to 0
    torch.testing.assert_close(quantize.quantize_tensor(w, 2, per_channel=False, symmetric=False),
                               torch.tensor([-1.0, 0.0, 0.0, 2.0]))


def _brute_force(w, bits, symmetric):
    """Nearest point of the grid, per row, by searching every grid point."""
    out = np.empty_like(w)
    for i, row in enumerate(w):
        if symmetric:
            levels = 2 ** (bits - 1) - 1
            grid = np.arange(-levels, levels + 1) * (np.abs(row).max() / levels)
        else:
            low, high = min(row.min(), 0.0), max(row.max(), 0.0)
            scale = (high - low) / (2**bits - 1)
            zero = np.round(-low / scale)
            grid = (np.arange(2**bits) - zero) * scale
        out[i] = grid[np.abs(row[:, None] - grid[None, :]).argmin(axis=1)]
    return out


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_matches_brute_force_nearest_grid_point(bits, symmetric):
    w = torch.randn(6, 50, dtype=torch.float64, generator=torch.Generator().manual_seed(bits)) * torch.arange(1, 7)[:, None]
    q = quantize.quantize_tensor(w, bits, per_channel=True, symmetric=symmetric)
    np.testing.assert_allclose(q.numpy(), _brute_force(w.numpy(), bits, symmetric), rtol=1e-12, atol=1e-12)
    distinct = max(len(torch.unique(row)) for row in q)
    assert distinct <= (2 ** bits - 1 if symmetric else 2 ** bits)


def test_conv_weights_per_output_channel_and_zero_channel():
    w = torch.randn(4, 3, 3, 3)
    w[2] = 0.0
    q = quantize.quantize_tensor(w, 4)
    assert q.shape == w.shape and (q[2] == 0).all()
    for c in range(4):
        torch.testing.assert_close(q[c], quantize.quantize_tensor(w[c].flatten(), 4, per_channel=False).view(3, 3, 3))


def test_rejects_one_bit():
    with pytest.raises(ValueError):
        quantize.quantize_tensor(torch.ones(3), 1)


def test_quantize_model_copies_and_leaves_biases_and_norms():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize.quantize_model(model, bits=3)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])  # the original is untouched
    qs = q.state_dict()
    for key in ("0.bias", "1.weight", "1.bias", "1.running_mean", "4.bias"):
        torch.testing.assert_close(qs[key], before[key])
    for key in ("0.weight", "4.weight"):
        assert not torch.equal(qs[key], before[key])
        torch.testing.assert_close(qs[key], quantize.quantize_tensor(before[key], 3))
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(quantize.quantize_model(model, bits=16)(x), model(x), rtol=1e-3, atol=1e-3)
