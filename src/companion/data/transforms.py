"""From uint8 image batches to network inputs: normalization and augmentation.

Both work on the tensor's own device (the training loop keeps whole datasets on the GPU as
uint8), and neither loops over images in Python.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

# Per-channel mean and standard deviation of the *training* images scaled to [0, 1], taken over
# all training pixels (per-pixel std, not the std of per-image means that some code quotes).
# - mnist: computed here from the lossless offline copy (mnist.npz, identical to the official
#   idx files): mean 0.1306604762738429, std 0.30810780385646264.
# - cifar10, cifar100, svhn: the values computed on the official training sets by
#   Armour/pytorch-nn-practice (utils/meanstd.py) and reused widely (e.g. in torchvision-based
#   training scripts); the CIFAR-10 std agrees with data/README (0.2470, 0.2435, 0.2616), and
#   the JPEG copy's mean matches them to 4 digits (tests check it when the copy is present).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "mnist": ((0.1306604762738429,), (0.30810780385646264,)),
    "cifar10": ((0.49139968, 0.48215841, 0.44653091), (0.24703223, 0.24348513, 0.26158784)),
    "cifar100": ((0.50707516, 0.48654887, 0.44091784), (0.26733429, 0.25643846, 0.27615047)),
    "svhn": ((0.43768210, 0.44376970, 0.47280442), (0.19803012, 0.20101562, 0.19703614)),
}


_STATISTICS: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}


def statistics(name: str, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``NORMALIZATION[name]`` as float32 (C, 1, 1) tensors on ``device``, made once per
    (dataset, device): building them for every batch would cost two blocking host-to-device
    copies per training step on a GPU. The cached tensors are shared: do not modify them."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (name, device)
    if key not in _STATISTICS:
        with torch.inference_mode(False):  # ordinary tensors even if first made under inference_mode
            _STATISTICS[key] = tuple(torch.tensor(v, dtype=torch.float32, device=device).view(-1, 1, 1)
                                     for v in NORMALIZATION[name])
    return _STATISTICS[key]


def to_float(x: torch.Tensor, name: str) -> torch.Tensor:
    """uint8 images (N, C, H, W) or (C, H, W) -> float32 ``(x / 255 - mean) / std`` per channel.

    ``name`` selects the dataset's training-set statistics (see ``NORMALIZATION``); the result
    stays on ``x``'s device.
    """
    if name not in NORMALIZATION:
        raise ValueError(f"no normalization statistics for {name!r}; known: "
                         f"{', '.join(NORMALIZATION)}")
    if x.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {x.dtype}")
    mean, std = statistics(name, x.device)
    channels = x.shape[-3]
    if channels != mean.shape[0]:
        raise ValueError(f"{name} has {mean.shape[0]} channel(s), the images have {channels}")
    return (x.to(torch.float32) / 255.0 - mean) / std


def augment(x_uint8: torch.Tensor, pad: int = 4, flip: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of the zero-padded images and random horizontal flip, for a uint8 batch.

    Every image (N, C, H, W) is padded by ``pad`` zero pixels on each side, an H x W window is
    cut at an offset drawn uniformly from {0, ..., 2 pad} in each direction, and the window is
    mirrored left-right with probability 1/2 when ``flip``. All images are done at once by
    index arithmetic on the tensor's device; the same ``generator`` state (which must live on
    that device) gives the same batch.
    """
    if x_uint8.dtype != torch.uint8 or x_uint8.dim() != 4:
        raise ValueError(f"augment expects uint8 (N, C, H, W), got {x_uint8.dtype} "
                         f"{tuple(x_uint8.shape)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if generator is None:
        train = sys.modules.get("companion.train")
        if train is not None and train.in_side_by_side():
            raise RuntimeError("augment(generator=None) in a job run side by side draws from the default "
                               "generator every thread shares: pass generator=torch.Generator("
                               "device=x.device).manual_seed(seed)")
    n, c, h, w = x_uint8.shape
    device = x_uint8.device
    padded = F.pad(x_uint8, (pad, pad, pad, pad)) if pad else x_uint8
    top = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    left = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    rows = top + torch.arange(h, device=device)                         # (N, H)
    cols = left + torch.arange(w, device=device)                        # (N, W)
    if flip:
        mirrored = torch.rand(n, 1, generator=generator, device=device) < 0.5
        cols = torch.where(mirrored, cols.flip(1), cols)
    # Flat index of every output pixel in its padded image plane, shared by the channels.
    flat = rows.unsqueeze(2) * (w + 2 * pad) + cols.unsqueeze(1)            # (N, H, W)
    flat = flat.view(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, flat).view(n, c, h, w)
