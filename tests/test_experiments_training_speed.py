"""The training-speed recipe: the reference loop's per-sample transforms against the batch
transforms, its bounded DataLoader workers, and the row of one timing pair."""

import time

import numpy as np
import pytest
import torch

from companion import data
from companion.experiments import training_speed


def _images(n=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8), torch.arange(n) % 10


def test_per_sample_transform_is_the_batch_normalization_and_crops_a_padded_window():
    x, y = _images()
    plain = training_speed.PerSampleDataset(x, y, "cifar10", augment=False)
    batch = data.to_float(x, "cifar10")
    for i in range(len(y)):
        sample, label = plain[i]
        assert label == int(y[i]) and torch.allclose(sample, batch[i], atol=1e-6)
    augmented = training_speed.PerSampleDataset(x, y, "cifar10", augment=True)
    torch.manual_seed(0)
    for i in range(len(y)):
        sample, _ = augmented[i]
        padded = torch.nn.functional.pad(batch[i], (4, 4, 4, 4), value=0.0)
        # normalization after padding with raw 0: the padded border is (0 - mean) / std
        mean, std = (torch.tensor(v).view(-1, 1, 1) for v in data.NORMALIZATION["cifar10"])
        raw = torch.nn.functional.pad(x[i].float() / 255, (4, 4, 4, 4))
        candidates = [((raw[:, t:t + 32, s:s + 32] - mean) / std) for t in range(9) for s in range(9)]
        candidates += [c.flip(-1) for c in candidates]
        assert any(torch.allclose(sample, c, atol=1e-6) for c in candidates)
        assert padded.shape == (3, 40, 40)


class _Stuck(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        time.sleep(60)  # a stuck worker
        return torch.zeros(2), 0


def test_reference_workers_are_bounded_by_the_timeout():
    loader = torch.utils.data.DataLoader(_Stuck(), batch_size=2, num_workers=1, timeout=1)
    began = time.perf_counter()
    with pytest.raises(RuntimeError, match="timed out"):
        next(iter(loader))
    assert time.perf_counter() - began < 30  # the timeout, the shutdown of the worker, not its 60 s
    x, y = _images()
    bounded = training_speed.reference_loader(x, y, "cifar10", augment=True, batch_size=3, workers=1, timeout=30,
                                              pin_memory=False)
    assert bounded.timeout == 30 and sum(len(b[1]) for b in bounded) == len(y)
    assert training_speed.reference_loader(x, y, "cifar10", augment=False, batch_size=3, workers=0, timeout=30,
                                           pin_memory=False).timeout == 0


def test_one_timing_pair_on_digits():
    config = training_speed.Config(epochs=2, reference_epochs=2, n_train=300, n_test=100, nc_timings=2)
    row = training_speed.run(config)
    assert len(row["epoch_seconds"]) == 2 and len(row["reference_epoch_seconds"]) == 2 and len(row["nc_seconds"]) == 2
    assert row["images"] == 300 and row["nc_images"] == 300
    assert row["ratio"] == pytest.approx(row["images_per_second"] / row["reference_images_per_second"])
    assert row["images_per_second"] == pytest.approx(300 * 2 / sum(row["epoch_seconds"]))
    assert np.isfinite(row["test_acc"]) and np.isfinite(row["reference_test_acc"])
    with pytest.raises(ValueError):
        training_speed.Config(arch="vit")
