"""Round-to-nearest post-training weight quantization ("fake quantization": the values are
rounded to a b-bit grid and stored back as floats, which is what accuracy depends on).

* ``symmetric=True``: the grid is {-(2^(b-1) - 1), ..., 2^(b-1) - 1} * s with
  s = max|w| / (2^(b-1) - 1) (so 2 bits give the ternary grid {-s, 0, s});
* ``symmetric=False``: the 2^b levels {0, ..., 2^b - 1} shifted by a zero point,
  w ~ (q - zero) * s with s = (max w - min w) / (2^b - 1) and zero = round(-min w / s).

``per_channel=True`` uses one scale per output channel (dim 0 of a Linear or Conv weight),
``False`` one per tensor. Ties round half to even (``torch.round``). ``quantize_model``
returns a copy of a model with the weights of its Linear and Conv layers quantized; biases
and normalization parameters stay in float, as in the usual weight-only post-training
quantization of networks.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

QUANTIZED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # weight dim 0 = output channel


def _range(w: torch.Tensor, per_channel: bool, reduce) -> torch.Tensor:
    """max/min over each output channel (kept broadcastable) or over the whole tensor."""
    if per_channel and w.ndim > 1:
        return reduce(w.flatten(1), dim=1).values.view(-1, *([1] * (w.ndim - 1)))
    return reduce(w.flatten(), dim=0).values


def quantize_tensor(w: torch.Tensor, bits: int, per_channel: bool = True, symmetric: bool = True) -> torch.Tensor:
    """``w`` rounded to the nearest point of its b-bit grid (same shape and dtype)."""
    if bits < 2:
        raise ValueError(f"bits must be >= 2, got {bits}")
    if symmetric:
        levels = 2 ** (bits - 1) - 1
        scale = _range(w.abs(), per_channel, torch.max) / levels
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero channel stays zero
        return torch.clamp(torch.round(w / scale), -levels, levels) * scale
    levels = 2**bits - 1
    low, high = _range(w, per_channel, torch.min), _range(w, per_channel, torch.max)
    low, high = torch.clamp(low, max=0.0), torch.clamp(high, min=0.0)  # zero must be representable
    scale = (high - low) / levels
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero = torch.round(-low / scale)
    return (torch.clamp(torch.round(w / scale) + zero, 0, levels) - zero) * scale


def quantize_model(model: nn.Module, bits: int, per_channel: bool = True, symmetric: bool = True) -> nn.Module:
    """A deep copy of ``model`` whose Linear/Conv weights are quantized to ``bits`` bits."""
    quantized = copy.deepcopy(model)
    with torch.no_grad():
        for module in quantized.modules():
            if isinstance(module, QUANTIZED_LAYERS):
                module.weight.copy_(quantize_tensor(module.weight, bits, per_channel, symmetric))
    return quantized
