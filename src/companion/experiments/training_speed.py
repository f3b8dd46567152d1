"""The training-speed benchmark: ``companion.train.fit`` against a loop written like the papers' code.

One :class:`Config` is one timing pair on one model: the same initial weights trained by

* **our loop**, ``companion.train.fit``: the data on the device once (uint8 images), batches cut
  from a random permutation, augmentation (``data.augment``) and normalization on the device,
  bf16 autocast and channels_last for conv nets on CUDA;
* **the reference loop** (:func:`reference_fit`), the classic PyTorch loop of the papers'
  official code (jinxinzhou/nc_loss ``train.py``, tding1/Neural-Collapse, ellenzhuwang/rooted_loss):
  a ``DataLoader`` over a ``Dataset`` whose ``__getitem__`` transforms one example at a time on the
  CPU (:class:`PerSampleDataset`: random crop with 4-pixel padding, horizontal flip, to float,
  normalize), float32 on the device (TF32 math where the run allows it), ``torch.optim.SGD``;

and the cost of one neural-collapse evaluation (penultimate features of the NC set with
``train.extract_features``, then ``metrics.neural_collapse``). :func:`run` warms both loops up
(one epoch of ours, ``warmup_batches`` of the reference: kernels, cuDNN autotuning, allocator),
times ``epochs`` epochs of ours and ``reference_epochs`` of the reference one epoch at a time
(``perf_counter`` after a device synchronization), then ``nc_timings`` NC evaluations, and returns
the row. Map it over repeats with ``companion.runs.map(run, [replace(config, repeat=i) ...])``.

**DataLoader workers are bounded.** With ``workers > 0`` each batch must arrive within
``loader_timeout`` seconds (``DataLoader(timeout=...)``): a stuck or dead worker raises a
``RuntimeError`` that names the timeout instead of hanging the command. The dataset class lives
here, importable, so workers started by ``fork``, ``spawn`` or ``forkserver`` all find it.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from .. import data as data_module
from .. import losses, metrics, models, train
from ..repro import device as default_device
from ..repro import environment
from . import check_choices

ARCHS = ("mlp", "resnet18")


@dataclass(frozen=True)
class Config:
    """One timing pair (ours, reference) and the NC evaluations of one model."""

    dataset: str = "digits"             # digits or cifar10
    arch: str = "mlp"                   # mlp (one hidden layer of round(128 * width)) or resnet18
    width: float = 1.0                  # width multiplier
    n_train: int | None = None          # training subset (None: the whole split)
    n_test: int | None = None           # test subset (None: the whole split)
    nc_per_class: int | None = None     # NC set: training images per class (None: the whole training set)
    epochs: int = 5                     # timed epochs of our loop
    reference_epochs: int = 5           # timed epochs of the reference loop
    batch_size: int = 128               # our loop's batch size
    reference_batch_size: int = 128     # the reference loop's (the papers': 128)
    lr: float = 0.05                    # SGD learning rate (both loops)
    momentum: float = 0.9               # SGD momentum (both loops)
    weight_decay: float = 5e-4          # SGD weight decay (both loops)
    augment: bool = False               # random crop + flip (images only)
    workers: int = 0                    # DataLoader worker processes of the reference loop
    loader_timeout: float = 120.0       # seconds a worker may take for one batch (workers > 0)
    warmup_batches: int = 5             # untimed batches of the reference before it is timed
    nc_timings: int = 3                 # NC evaluations timed
    seed: int = 0                       # initial weights, batch orders
    repeat: int = 0                     # which timing pair of the notebook (a label; same seed)

    def __post_init__(self) -> None:
        check_choices(self, arch=ARCHS)
        if self.workers < 0 or self.loader_timeout < 0:
            raise ValueError("workers and loader_timeout must be >= 0")


class PerSampleDataset(torch.utils.data.Dataset):
    """CPU arrays transformed one example at a time, like torchvision's RandomCrop(32, padding=4),
    RandomHorizontalFlip, ToTensor and Normalize in the papers' data loaders (numpy slicing
    instead of PIL: no slower, so a ratio against it errs in the reference's favour)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, name: str, augment: bool):
        self.x, self.y, self.augment = x.cpu().numpy(), y.cpu().numpy(), augment
        self.is_image = x.dtype == torch.uint8
        if self.is_image:
            mean, std = data_module.NORMALIZATION[name]
            self.mean = torch.tensor(mean).view(-1, 1, 1)
            self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        sample = self.x[i]
        if self.is_image and self.augment:
            padded = np.pad(sample, ((0, 0), (4, 4), (4, 4)))
            top, left = torch.randint(0, 9, (2,)).tolist()
            sample = padded[:, top:top + sample.shape[1], left:left + sample.shape[2]]
            if torch.rand(()) < 0.5:
                sample = sample[:, :, ::-1]
        tensor = torch.from_numpy(np.ascontiguousarray(sample))
        if self.is_image:
            tensor = (tensor.float() / 255 - self.mean) / self.std
        return tensor, int(self.y[i])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_loader(x: torch.Tensor, y: torch.Tensor, name: str, *, augment: bool, batch_size: int,
                     workers: int, timeout: float, pin_memory: bool) -> torch.utils.data.DataLoader:
    """The papers' ``DataLoader`` (shuffled, ``workers`` processes), with each batch bounded by
    ``timeout`` seconds when there are workers (a stuck worker raises instead of hanging)."""
    return torch.utils.data.DataLoader(
        PerSampleDataset(x, y, name, augment), batch_size=batch_size, shuffle=True, num_workers=workers,
        pin_memory=pin_memory, timeout=timeout if workers > 0 else 0)


def reference_fit(model: torch.nn.Module, loader: torch.utils.data.DataLoader, *, epochs: int, lr: float,
                  momentum: float, weight_decay: float, device: torch.device,
                  warmup_batches: int = 0) -> list[float]:
    """The papers' loop: float32 forward and backward, ``torch.optim.SGD``, CE. Returns the wall
    seconds of each epoch (device synchronized). With ``warmup_batches > 0`` it stops after that
    many batches (an untimed warm-up) and returns []."""
    model.to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    criterion = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs):
        _synchronize(device)
        began = time.perf_counter()
        for batch, (images, labels) in enumerate(loader):
            images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
            loss = criterion(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if batch + 1 == warmup_batches:
                return []
        _synchronize(device)
        seconds.append(time.perf_counter() - began)
    return seconds


@lru_cache(maxsize=4)
def _split(dataset: str, split: str, n: int | None, per_class: int | None, seed: int):
    return data_module.load(dataset, split, n=n, per_class=per_class, seed=seed)


def build(config: Config, in_features: int, in_channels: int, num_classes: int) -> models.Classifier:
    """The benchmark's model, initialized from ``torch.manual_seed(config.seed)``."""
    torch.manual_seed(config.seed)
    if config.arch == "mlp":
        return models.mlp(in_features, max(1, round(128 * config.width)), num_classes)
    return models.resnet18(num_classes=num_classes, width=config.width, in_channels=in_channels)


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _synchronize(device)
    began = time.perf_counter()
    fn()
    _synchronize(device)
    return time.perf_counter() - began


def run(config: Config) -> dict[str, Any]:
    """Time the two loops and the NC evaluation of ``config``; return the row (plain values).

    Keys: ``config``, ``device`` and ``device_name``, ``images`` (training images per epoch),
    ``parameters``, ``epoch_seconds`` (ours, one per timed epoch), ``reference_epoch_seconds``,
    ``images_per_second`` and ``reference_images_per_second`` (over the timed epochs),
    ``ratio`` (ours / reference), ``nc_seconds`` (one per timed NC evaluation), ``nc_images``,
    ``test_acc`` and ``reference_test_acc`` (the trained models: ours after ``epochs``, the
    reference after ``reference_epochs``, so not comparable with each other at gpu).
    """
    device = default_device()
    train_set = _split(config.dataset, "train", config.n_train, None, config.seed)
    test_set = _split(config.dataset, "test", config.n_test, None, config.seed)
    nc_set = train_set if config.nc_per_class is None else _split(config.dataset, "train", None, config.nc_per_class,
                                                                  config.seed)
    is_image = train_set.x.dtype == torch.uint8
    preprocess = (lambda xb: data_module.to_float(xb, config.dataset)) if is_image else None
    channels = train_set.x.shape[1] if is_image else 1
    initial = build(config, train_set.x[0].numel(), channels, train_set.num_classes)

    x_train, y_train = train_set.x.to(device), train_set.y.to(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augment = (lambda xb: data_module.augment(xb, generator=generator)) if config.augment and is_image else None

    def ours(model: torch.nn.Module, epochs: int) -> list[float]:
        history = train.fit(model, losses.get("ce"), (x_train, y_train), epochs=epochs, batch_size=config.batch_size,
                            lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                            augment=augment, preprocess=preprocess, progress=False, seed=config.seed)
        return np.diff([0.0, *history["seconds"].tolist()]).tolist()

    loader = reference_loader(train_set.x, train_set.y, config.dataset, augment=config.augment,
                              batch_size=config.reference_batch_size, workers=config.workers,
                              timeout=config.loader_timeout, pin_memory=device.type == "cuda")
    step = dict(lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, device=device)
    ours(copy.deepcopy(initial), 1)  # warm-ups
    reference_fit(copy.deepcopy(initial), loader, epochs=1, warmup_batches=config.warmup_batches, **step)
    our_model = copy.deepcopy(initial)
    epoch_seconds = ours(our_model, config.epochs)
    reference_model = copy.deepcopy(initial)
    reference_seconds = reference_fit(reference_model, loader, epochs=config.reference_epochs, **step)

    x_nc, y_nc = nc_set.x.to(device), nc_set.y.to(device)

    def nc_evaluation() -> dict[str, float]:
        features = train.extract_features(our_model, x_nc, preprocess=preprocess)
        return metrics.neural_collapse(features, y_nc, our_model.classifier.weight, our_model.classifier.bias)

    nc_evaluation()  # warm-up
    nc_seconds = [_timed(nc_evaluation, device) for _ in range(config.nc_timings)]
    images = len(train_set)
    rate = images * len(epoch_seconds) / sum(epoch_seconds)
    reference_rate = images * len(reference_seconds) / sum(reference_seconds)
    x_test, y_test = test_set.x.to(device), test_set.y.to(device)
    return {
        "config": asdict(config), "device": device.type, "device_name": environment()["device_name"],
        "images": images, "parameters": models.count_parameters(initial),
        "epoch_seconds": epoch_seconds, "reference_epoch_seconds": reference_seconds,
        "images_per_second": rate, "reference_images_per_second": reference_rate, "ratio": rate / reference_rate,
        "nc_seconds": nc_seconds, "nc_images": len(nc_set),
        "test_acc": train.evaluate(our_model, x_test, y_test, preprocess=preprocess)["acc"],
        "reference_test_acc": train.evaluate(reference_model, x_test, y_test, preprocess=preprocess)["acc"],
    }
