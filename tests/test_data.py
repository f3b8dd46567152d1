"""companion.data: readers on fabricated files in every official format, caching, subsets,
the spiral against an independent re-derivation, augmentation, errors, and fetch against
local files and a local HTTP server (never the internet)."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from companion.pipeline import cli, paths
from companion import data
from companion.data import download
from companion.data import images


@pytest.fixture(autouse=True)
def _private_user_cache(tmp_path, monkeypatch):
    """Caches that fall back to the user's cache folder land in the test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    return path


RNG = np.random.default_rng(1234)
USER_CACHE = os.environ.get("XDG_CACHE_HOME")  # before the fixture below redirects it


# ----------------------------------------------------------------------------- fabricators

def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                      *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def make_mnist_idx(folder, n_train=7, n_test=3):
    arrays = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = RNG.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", y)
        arrays[split] = (x, y)
    return arrays


def make_mnist_npz(folder, n_train=5, n_test=4):
    arrays = {s: (RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                  RNG.integers(0, 10, n, dtype=np.uint8))
              for s, n in (("train", n_train), ("test", n_test))}
    np.savez(folder / "mnist.npz", **{f"{k}_{s}": a for s, (x, y) in arrays.items()
                                      for k, a in (("x", x), ("y", y))})
    return arrays


def _pickle_to(path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def make_cifar10_pickles(root, per_batch=3, n_test=4):
    """cifar-10-batches-py/: five training batches, a test batch and batches.meta."""
    root.mkdir(parents=True)
    images_by_split = {"train": [], "test": []}
    labels_by_split = {"train": [], "test": []}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        split = "test" if name == "test_batch" else "train"
        n = n_test if split == "test" else per_batch
        x = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in RNG.integers(0, 10, n)]
        _pickle_to(root / name, {b"batch_label": name.encode(), b"labels": y, b"data": x,
                                 b"filenames": [b"f.png"] * n})
        images_by_split[split].append(x)
        labels_by_split[split].extend(y)
    _pickle_to(root / "batches.meta", {b"label_names": [c.encode() for c in
                                                          images.CIFAR10_CLASSES],
                                       b"num_vis": 3072})
    return {s: (np.concatenate(images_by_split[s]), np.array(labels_by_split[s]))
            for s in ("train", "test")}


def make_cifar100_pickles(root, n_train=6, n_test=3):
    root.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = RNG.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = [int(v) for v in RNG.integers(0, 100, n)]
        coarse = [int(v) for v in RNG.integers(0, 20, n)]
        _pickle_to(root / split, {b"data": x, b"fine_labels": fine, b"coarse_labels": coarse})
        out[split] = (x, np.array(fine), np.array(coarse))
    _pickle_to(root / "meta", {b"fine_label_names": [f"fine{k}".encode() for k in range(100)],
                               b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)]})
    return out


def make_tar_gz(archive, folder) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)


def smooth_images(n: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8 gradients, which JPEG q75 keeps within a few grey levels."""
    rows, cols = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    base = np.stack([rows * 4, cols * 4, (rows + cols) * 2], axis=-1)
    return np.stack([(base + 20 * k) % 200 + 20 for k in range(n)]).astype(np.uint8)


def make_cifar10_jpeg_npz(folder, n_train=6, n_test=3):
    from PIL import Image

    contents, originals = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        pictures = smooth_images(n)
        blobs = []
        for picture in pictures:
            buffer = io.BytesIO()
            Image.fromarray(picture).save(buffer, format="JPEG", quality=75)
            blobs.append(np.frombuffer(buffer.getvalue(), dtype=np.uint8))
        contents[f"{split}_jpeg"] = np.concatenate(blobs)
        contents[f"{split}_offsets"] = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
        contents[f"{split}_labels"] = (np.arange(n) % 10).astype(np.uint8)
        originals[split] = (pictures, blobs)
    np.savez(folder / "cifar10_jpeg.npz", classes=np.array(images.CIFAR10_CLASSES), **contents)
    return originals


# ----------------------------------------------------------------------------- readers

def test_mnist_idx_reader(folder):
    arrays = make_mnist_idx(folder)
    for split, (x, y) in arrays.items():
        ds = data.load("mnist", split, data_dir=folder)
        assert ds.x.dtype == torch.uint8 and tuple(ds.x.shape) == (len(y), 1, 28, 28)
        assert ds.y.dtype == torch.int64
        np.testing.assert_array_equal(ds.x[:, 0].numpy(), x)
        np.testing.assert_array_equal(ds.y.numpy(), y)
        assert "official MNIST idx" in ds.source and ds.num_classes == 10


def test_idx_reader_rejects_a_wrong_header(folder):
    (folder / "bad.gz").write_bytes(gzip.compress(struct.pack(">HBBI", 0, 0x0D, 1, 3) + b"abc"))
    with pytest.raises(ValueError, match="unsigned-byte"):
        images.read_idx(folder / "bad.gz")


def test_mnist_npz_and_official_files_win(folder):
    npz = make_mnist_npz(folder)
    ds = data.load("mnist", "test", data_dir=folder)
    np.testing.assert_array_equal(ds.x[:, 0].numpy(), npz["test"][0])
    np.testing.assert_array_equal(ds.y.numpy(), npz["test"][1])
    assert ds.source.startswith("mnist.npz")
    idx = make_mnist_idx(folder)  # now both are present: the official files are preferred
    ds = data.load("mnist", "test", data_dir=folder)
    np.testing.assert_array_equal(ds.y.numpy(), idx["test"][1])
    assert "official" in ds.source


def test_cifar10_pickles_folder_and_tar_gz(folder, tmp_path):
    expected = make_cifar10_pickles(folder / "cifar-10-batches-py")
    from_folder = {s: data.load("cifar10", s, data_dir=folder) for s in ("train", "test")}
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    make_tar_gz(archive_dir / "cifar-10-python.tar.gz", folder / "cifar-10-batches-py")
    from_tar = {s: data.load("cifar10", s, data_dir=archive_dir) for s in ("train", "test")}
    for split, (rows, labels) in expected.items():
        for ds in (from_folder[split], from_tar[split]):
            assert tuple(ds.x.shape) == (len(labels), 3, 32, 32)
            np.testing.assert_array_equal(ds.y.numpy(), labels)
            x = ds.x.numpy()
            # Rows hold the red plane, then green, then blue, each row-major (32 x 32).
            np.testing.assert_array_equal(x[:, 0, 0, 1], rows[:, 1])
            np.testing.assert_array_equal(x[:, 0, 1, 0], rows[:, 32])
            np.testing.assert_array_equal(x[:, 1, 0, 0], rows[:, 1024])
            np.testing.assert_array_equal(x[:, 2, 31, 31], rows[:, 3071])
            assert ds.classes == tuple(images.CIFAR10_CLASSES)
    assert "cifar-10-batches-py/" in from_folder["train"].source
    assert "cifar-10-python.tar.gz" in from_tar["train"].source
    # One pass through the archive cached both splits.
    cached = sorted(p.name.rsplit("-", 1)[0] for p in (archive_dir / "cache").iterdir())
    assert cached == ["cifar10-tar-test", "cifar10-tar-train"]


def test_cifar100_fine_and_coarse_labels(folder, tmp_path):
    expected = make_cifar100_pickles(folder / "cifar-100-python")
    make_tar_gz(tmp_path / "cifar-100-python.tar.gz", folder / "cifar-100-python")
    for root in (folder, tmp_path):
        for split, (rows, fine, coarse) in expected.items():
            ds = data.load("cifar100", split, data_dir=root)
            np.testing.assert_array_equal(ds.x.numpy().reshape(len(fine), -1), rows)
            np.testing.assert_array_equal(ds.y.numpy(), fine)
            assert ds.num_classes == 100 and ds.classes[3] == "fine3"
            ds = data.load("cifar100", split, data_dir=root, label="coarse")
            np.testing.assert_array_equal(ds.y.numpy(), coarse)
            assert ds.num_classes == 20 and ds.classes[3] == "coarse3"
    with pytest.raises(ValueError, match="fine, coarse"):
        data.load("cifar100", data_dir=folder, label="superclass")


def test_svhn_mat_reader(folder):
    from scipy.io import savemat

    for split, n in (("train", 5), ("test", 4)):
        x = RNG.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = np.array([[10], [1], [9], [10], [3]][:n], dtype=np.uint8)
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
        ds = data.load("svhn", split, data_dir=folder)
        assert tuple(ds.x.shape) == (n, 3, 32, 32)
        np.testing.assert_array_equal(ds.x.numpy(), x.transpose(3, 2, 0, 1))
        np.testing.assert_array_equal(ds.y.numpy(), [0, 1, 9, 0, 3][:n])  # label 10 is digit 0


def test_cifar10_jpeg_copy(folder):
    from PIL import Image

    originals = make_cifar10_jpeg_npz(folder)
    for split, (pictures, blobs) in originals.items():
        ds = data.load("cifar10", split, data_dir=folder)
        assert ds.x.dtype == torch.uint8 and tuple(ds.x.shape) == (len(pictures), 3, 32, 32)
        decoded = np.stack([np.asarray(Image.open(io.BytesIO(b.tobytes())).convert("RGB"))
                            for b in blobs])
        np.testing.assert_array_equal(ds.x.numpy(), decoded.transpose(0, 3, 1, 2))
        error = np.abs(ds.x.numpy().astype(int) - pictures.transpose(0, 3, 1, 2).astype(int))
        assert 0 < error.mean() < 4  # lossy, but close
        np.testing.assert_array_equal(ds.y.numpy(), np.arange(len(pictures)) % 10)
        assert "JPEG q75" in ds.source and "lossy" in ds.source


# ----------------------------------------------------------------------------- caching

def test_cache_round_trip_and_invalidation(folder, monkeypatch):
    arrays = make_mnist_npz(folder)
    first = data.load("mnist", data_dir=folder)
    entries = list((folder / "cache").iterdir())
    assert {e.name.rsplit("-", 1)[0] for e in entries} == {"mnist-npz-train", "mnist-npz-test"}
    assert all((e / "x.npy").is_file() and (e / "meta.json").is_file() for e in entries)

    def refuse(*_):
        raise AssertionError("decoded again despite a cache")

    idx_source, npz_source = images.SOURCES["mnist"]
    monkeypatch.setitem(images.SOURCES, "mnist",
                        [idx_source, dataclasses.replace(npz_source, read=refuse)])
    second = data.load("mnist", data_dir=folder)
    assert torch.equal(first.x, second.x) and torch.equal(first.y, second.y)
    assert first.classes == second.classes and second.source == first.source
    np.testing.assert_array_equal(second.y.numpy(), arrays["train"][1])
    # A replaced file gets a new cache key, so it is decoded afresh (here: refused).
    make_mnist_npz(folder, n_train=6)
    with pytest.raises(AssertionError, match="decoded again"):
        data.load("mnist", data_dir=folder)


def test_read_only_data_dir_caches_elsewhere_or_nowhere(folder, tmp_path, monkeypatch):
    make_mnist_npz(folder)
    folder.chmod(0o555)
    try:
        ds = data.load("mnist", data_dir=folder)
        assert not (folder / "cache").exists()
        assert any((tmp_path / "user-cache" / "companion").iterdir())
        # No writable cache at all: the load still works.
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        monkeypatch.setattr(images, "cache_roots", lambda _: [locked / "a", folder / "cache"])
        again = data.load("mnist", data_dir=folder, cache=True)
        assert torch.equal(ds.x, again.x) and not any(locked.iterdir())
    finally:
        folder.chmod(0o755)


# ----------------------------------------------------------------------------- subsets

def test_subsets_n_and_per_class(folder):
    full = data.load("digits", seed=3)  # the seed also fixes digits' train/test split
    sub = data.load("digits", n=100, seed=3)
    assert len(sub) == 100
    order = np.random.default_rng(3).permutation(len(full))[:100]  # the documented rule
    assert torch.equal(sub.x, full.x[order]) and torch.equal(sub.y, full.y[order])
    assert torch.equal(sub.x, data.load("digits", n=100, seed=3).x)
    assert not torch.equal(sub.y, data.load("digits", n=100, seed=4).y)

    full, balanced = data.load("digits", seed=1), data.load("digits", per_class=7, seed=1)
    assert torch.equal(balanced.y.bincount(), torch.full((10,), 7))
    # Each selected row is a distinct row of the full split with the same label.
    rows = {tuple(r): int(label) for r, label in zip(full.x.numpy(), full.y.numpy())}
    picked = [tuple(r) for r in balanced.x.numpy()]
    assert len(set(picked)) == 70 and all(rows[r] == int(lab) for r, lab in
                                         zip(picked, balanced.y.numpy()))
    assert len(set(balanced.y[:10].tolist())) > 1  # shuffled order, not class-major
    assert "per_class=7" in balanced.source

    arrays = make_mnist_npz(folder, n_train=40)
    images_subset = data.load("mnist", per_class=1, seed=0, data_dir=folder)
    assert sorted(images_subset.y.tolist()) == sorted(set(arrays["train"][1].tolist()))
    with pytest.raises(ValueError, match="per_class=200 exceeds"):
        data.load("digits", per_class=200)
    with pytest.raises(ValueError, match="not both"):
        data.load("digits", n=5, per_class=5)
    with pytest.raises(ValueError, match="exceeds"):
        data.load("uci:iris_1v2", n=1000)


# ----------------------------------------------------------------------------- synthetic

def reference_spiral(seed: int, points: int = 100, classes: int = 3) -> np.ndarray:
    """The official make_dataset formula, written out again with NumPy's global generator."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        x = np.zeros((points * classes, 2))
        for j in range(classes):
            r = np.linspace(0.0, 1, points)
            start = 2 * np.pi / classes * j
            t = np.linspace(start, start + 4 * np.pi, points) + np.random.randn(points) * 0.2
            x[points * j:points * (j + 1)] = np.c_[r * np.cos(t), r * np.sin(t)]
        return x
    finally:
        np.random.set_state(state)


def test_spiral_is_the_official_generator():
    train, test = data.load("spiral"), data.load("spiral", "test")
    assert train.x.dtype == torch.float64 and tuple(train.x.shape) == (300, 2)
    np.testing.assert_array_equal(train.x.numpy(), reference_spiral(0))
    np.testing.assert_array_equal(test.x.numpy(), reference_spiral(1))  # addendum: seed 1
    np.testing.assert_array_equal(train.y.numpy(), np.repeat([0, 1, 2], 100))
    radius = np.linalg.norm(train.x.numpy(), axis=1).reshape(3, 100)
    np.testing.assert_allclose(radius, np.tile(np.linspace(0, 1, 100), (3, 1)), atol=1e-15)
    assert np.all(train.x.numpy()[[0, 100, 200]] == 0)  # three origins: 298/300 at most
    # The global generator is left alone.
    np.random.seed(5)
    expected = np.random.rand()
    np.random.seed(5)
    data.load("spiral", seed=7)
    assert np.random.rand() == expected
    other = data.load("spiral", points_per_class=50, num_classes=4)
    np.testing.assert_array_equal(other.x.numpy(), reference_spiral(0, 50, 4))
    with pytest.raises(ValueError, match="unknown option.*points_per_class"):
        data.load("spiral", width=3)


def test_gaussian_means_and_sizes():
    ds = data.load("gaussian", num_classes=3, dim=5, separation=4.0, per_class=2000)
    means = np.stack([ds.x.numpy()[ds.y.numpy() == k].mean(0) for k in range(3)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(distances, 4.0, atol=0.15)
    assert torch.equal(ds.y.bincount(), torch.full((3,), 2000))
    for dim in (1, 2):
        means = data.load("gaussian", num_classes=4, dim=dim, separation=2.0).info["means"]
        gaps = np.linalg.norm(np.roll(means, -1, 0) - means, axis=1)[:3]
        np.testing.assert_allclose(gaps, 2.0)
    assert len(data.load("gaussian", n=7)) == 7
    train, test = data.load("gaussian"), data.load("gaussian", "test")
    assert not torch.equal(train.x, test.x)


def test_linear_separable_margin():
    ds = data.load("linear_separable", n=300, dim=6, margin=0.2, seed=2)
    w = ds.info["w_star"]
    scores = ds.x.numpy() @ w
    assert tuple(ds.x.shape) == (300, 6) and ds.x.dtype == torch.float64
    assert np.all(np.abs(scores) >= 0.2) and np.array_equal(ds.y.numpy(), scores > 0)
    test = data.load("linear_separable", "test", n=50, dim=6, margin=0.2, seed=2)
    np.testing.assert_array_equal(test.info["w_star"], w)  # one distribution, two samples
    from sklearn.svm import LinearSVC

    svm = LinearSVC(C=1e4, max_iter=100_000).fit(ds.x.numpy(), ds.y.numpy())
    assert svm.score(ds.x.numpy(), ds.y.numpy()) == 1.0  # separable, independently checked
    assert torch.equal(data.load("linear_separable", per_class=40).y.bincount(),
                       torch.tensor([40, 40]))


def test_digits_and_uci_splits():
    from sklearn.datasets import load_digits, load_wine

    train, test = data.load("digits"), data.load("digits", "test")
    assert train.x.dtype == torch.float32 and (len(train), len(test)) == (1257, 540)
    assert 0 <= train.x.min() and train.x.max() <= 1
    everything = np.concatenate([train.x.numpy(), test.x.numpy()]) * 16
    reference = load_digits().data
    assert sorted(map(tuple, everything.round())) == sorted(map(tuple, reference))
    share = test.y.bincount().double() / (train.y.bincount() + test.y.bincount()).double()
    assert torch.all((share - 0.3).abs() < 0.02)  # stratified
    assert not torch.equal(train.x, data.load("digits", seed=1).x)

    wine = load_wine()
    kept = np.isin(wine.target, (0, 1)).sum()
    for name, size, features in (("uci:breast_cancer", 569, 30), ("uci:wine_0v1", kept, 13),
                                 ("uci:iris_1v2", 100, 4), ("uci:digits_3v8", 357, 64)):
        tr, te = data.load(name), data.load(name, "test")
        assert tr.x.dtype == torch.float64 and tr.x.shape[1] == features
        assert len(tr) + len(te) == size and abs(len(te) - 0.3 * size) <= 1
        assert set(tr.y.tolist()) == {0, 1} and tr.num_classes == 2
    assert data.load("uci:digits_3v8").x.max() == 16  # raw features


def test_unknown_names_and_splits():
    with pytest.raises(ValueError, match="valid names: .*spiral.*cifar10"):
        data.load("imagenet")
    with pytest.raises(ValueError, match="valid splits: train, test"):
        data.load("spiral", split="val")


def test_missing_dataset_error_names_the_fix(folder):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("cifar10", data_dir=folder)
    message = str(info.value)
    assert "companion data fetch cifar10" in message and str(folder) in message
    assert "COMPANION_DATA" in message and "cifar10_jpeg.npz" in message
    assert isinstance(info.value, FileNotFoundError)


# ----------------------------------------------------------------------------- transforms

@pytest.mark.parametrize("name, make", [("mnist", "npz"), ("mnist", "idx"), ("cifar10", "tar")])
def test_a_truncated_dataset_file_is_named_corrupt_with_the_fetch_command(folder, name, make):
    """Issue 14 item 11: a truncated file gave 'BadZipFile: File is not a zip file' without its
    name, and `data check --verify` listed it as present."""
    if make == "npz":
        make_mnist_npz(folder)
        bad = folder / "mnist.npz"
    elif make == "idx":
        for split, (images_name, labels_name) in images.MNIST_IDX.items():
            x = RNG.integers(0, 256, (3, 28, 28), dtype=np.uint8)
            (folder / images_name).write_bytes(gzip.compress(struct.pack(">HBB3I", 0, 8, 3, 3, 28, 28) + x.tobytes()))
            (folder / labels_name).write_bytes(gzip.compress(struct.pack(">HBBI", 0, 8, 1, 3) + bytes(3)))
        bad = folder / images.MNIST_IDX["train"][0]
    else:
        bad = folder / "cifar-10-python.tar.gz"
        with tarfile.open(bad, "w:gz") as tar:
            blob = pickle.dumps({b"labels": [0], b"data": np.zeros((1, 3072), np.uint8)})
            info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated, e.g. by a cut download
    with pytest.raises(data.CorruptDatasetError) as info:
        data.load(name, data_dir=folder, cache=False)
    message = str(info.value)
    assert str(bad) in message and "corrupt" in message and f"companion data fetch {name}" in message
    assert "\n" not in message
    report = data.check(folder, verify=True)
    line = next(l for l in report.splitlines() if bad.name in l)
    assert line.startswith("  [!]") and "CORRUPT" in line and f"companion data fetch {name}" in line
    assert "[x]" in data.check(folder)  # without --verify: only presence


def test_check_verify_uses_sha256sums_listed_in_the_data_dir(folder):
    make_mnist_npz(folder)
    good = hashlib.sha256((folder / "mnist.npz").read_bytes()).hexdigest()
    (folder / "SHA256SUMS").write_text(f"{good}  mnist.npz\n")
    assert "[x] mnist.npz (offline copy, SHA-256 ok)" in data.check(folder, verify=True)
    (folder / "SHA256SUMS").write_text(f"{'0' * 64}  mnist.npz\n")
    assert "[!] mnist.npz" in data.check(folder, verify=True)


def test_to_float_normalizes_per_channel():
    x = torch.randint(0, 256, (4, 3, 5, 5), dtype=torch.uint8)
    mean, std = data.NORMALIZATION["cifar10"]
    expected = (x.double() / 255 - torch.tensor(mean).view(3, 1, 1).double()) \
        / torch.tensor(std).view(3, 1, 1).double()
    out = data.to_float(x, "cifar10")
    assert out.dtype == torch.float32
    assert (out.double() - expected).abs().max() < 1e-5
    with pytest.raises(ValueError, match="1 channel"):
        data.to_float(x, "mnist")


def test_augment_crops_are_shifted_windows_and_flips_flip():
    generator = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = data.augment(x, pad=2, flip=True, generator=generator)
    assert out.dtype == torch.uint8 and out.shape == x.shape and out.is_contiguous()
    padded = F.pad(x, (2, 2, 2, 2))
    flips = 0
    for i in range(len(x)):
        windows = {(dy, dx, mirrored) for dy in range(5) for dx in range(5)
                   for mirrored in (False, True)
                   if torch.equal(out[i], (padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1)
                                           if mirrored else padded[i, :, dy:dy + 8, dx:dx + 8]))}
        assert windows, f"image {i} is not a (mirrored) window of its padded image"
        flips += all(m for _, _, m in windows)
    assert 10 < flips < 54  # about half are mirrored
    again = data.augment(x, pad=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    channels_last = x.to(memory_format=torch.channels_last)
    assert torch.equal(out, data.augment(channels_last, pad=2,
                                         generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(out, data.augment(x, pad=2, generator=torch.Generator().manual_seed(1)))
    # No padding, no flip: the identity; flip only: each image is itself or its mirror image.
    assert torch.equal(data.augment(x, pad=0, flip=False), x)
    mirrored = data.augment(x, pad=0, generator=torch.Generator().manual_seed(2))
    is_flipped = (mirrored == x.flip(-1)).flatten(1).all(1)
    assert torch.all(is_flipped | (mirrored == x).flatten(1).all(1)) and 0 < is_flipped.sum() < 64
    with pytest.raises(ValueError, match="uint8"):
        data.augment(x.float())


# ----------------------------------------------------------------------------- fetch

@contextlib.contextmanager
def _serve(files: dict[str, bytes], truncate: set[str] = frozenset()):
    """A local HTTP server for ``files``; names in ``truncate`` announce more bytes than sent."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            name = self.path.removeprefix("/files/")
            if name not in files:
                self.send_error(404)
                return
            body = files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + (100 if name in truncate else 0)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/files"
        finally:
            server.shutdown()
            thread.join()


@pytest.fixture
def fake_remote(monkeypatch, tmp_path):
    """Pretend mnist's official files are two small files with known SHA-256 sums."""
    contents = {"a.gz": b"first official file" * 100, "b.gz": b"second official file"}
    remotes = tuple(download.RemoteFile(name, hashlib.sha256(body).hexdigest(),
                                            ("http://unreachable.invalid/",))
                    for name, body in contents.items())
    monkeypatch.setitem(download.OFFICIAL_FILES, "mnist", remotes)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name, body in contents.items():
        (mirror / name).write_bytes(body)
    return contents, mirror


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_fetch_from_file_urls_verifies_and_skips_present_files(folder, fake_remote):
    contents, mirror = fake_remote
    log = []
    paths_ = data.fetch("mnist", data_dir=folder, base_url=mirror.as_uri(), log=log.append)
    assert [p.name for p in paths_] == ["a.gz", "b.gz"] and _leftovers(folder) == ["a.gz", "b.gz"]
    assert all((folder / n).read_bytes() == body for n, body in contents.items())
    log.clear()
    data.fetch("mnist", data_dir=folder, base_url=mirror.as_uri(), log=log.append)
    assert all("present, SHA-256 ok" in line for line in log)


def test_fetch_checksum_mismatch_leaves_nothing(folder, fake_remote):
    _, mirror = fake_remote
    (mirror / "a.gz").write_bytes(b"tampered")
    with pytest.raises(data.DownloadError, match="a.gz.*does not match the known hash"):
        data.fetch("mnist", data_dir=folder, base_url=mirror.as_uri(), retries=0)
    assert _leftovers(folder) == []
    # A corrupt file already in place is replaced only by a verified one.
    (folder / "a.gz").write_bytes(b"old corrupt copy")
    with pytest.raises(data.DownloadError):
        data.fetch("mnist", data_dir=folder, base_url=mirror.as_uri(), retries=0)
    assert (folder / "a.gz").read_bytes() == b"old corrupt copy" and _leftovers(folder) == ["a.gz"]


def test_fetch_over_http_with_mirror_fallback_and_truncation(folder, fake_remote, monkeypatch):
    contents, _ = fake_remote
    with _serve(contents, truncate={"b.gz"}) as base, _serve(contents) as base_ok:
        with pytest.raises(data.DownloadError, match="could not fetch b.gz"):
            data.fetch("mnist", data_dir=folder, base_url=base, retries=0)
        assert _leftovers(folder) == ["a.gz"]  # a.gz verified; nothing of b.gz
        remotes = tuple(download.RemoteFile(r.name, r.sha256, (base + "/missing/", base_ok))
                        for r in download.OFFICIAL_FILES["mnist"])
        monkeypatch.setitem(download.OFFICIAL_FILES, "mnist", remotes)
        data.fetch("mnist", data_dir=folder, retries=0)  # the first mirror answers 404, the second works
    assert _leftovers(folder) == ["a.gz", "b.gz"]
    assert (folder / "b.gz").read_bytes() == contents["b.gz"]


def test_fetch_uses_pooch_and_retries_a_failed_download(folder, fake_remote, monkeypatch):
    """Issue 14 item 13: downloads go through pooch (checksummed, atomic, retried)."""
    import pooch

    contents, _ = fake_remote
    created = []
    real_create = pooch.create
    monkeypatch.setattr(pooch, "create", lambda **kw: created.append(kw) or real_create(**kw))
    failures = {"a.gz": 1}  # the first request for a.gz fails with a server error

    class Flaky(dict):
        def __contains__(self, name):
            if failures.get(name):
                failures[name] -= 1
                return False
            return dict.__contains__(self, name)

    with _serve(Flaky(contents)) as base:
        with pytest.raises(data.DownloadError):
            data.fetch("mnist", data_dir=folder, base_url=base, retries=0)
        failures["a.gz"] = 1
        data.fetch("mnist", data_dir=folder, base_url=base, retries=1)
    assert _leftovers(folder) == ["a.gz", "b.gz"] and created
    assert all(kw["retry_if_failed"] == 1 for kw in created[-2:])


def test_fetch_refuses_generated_sets_and_read_only_dirs(folder):
    with pytest.raises(ValueError, match="generated"):
        data.fetch("spiral", data_dir=folder)
    folder.chmod(0o555)
    try:
        with pytest.raises(data.DownloadError, match="read-only"):
            data.fetch("cifar10", data_dir=folder)
    finally:
        folder.chmod(0o755)


def test_official_checksums_are_well_formed():
    for remotes in download.OFFICIAL_FILES.values():
        for remote in remotes:
            assert len(remote.sha256) == 64 and int(remote.sha256, 16) >= 0
            assert remote.urls()[0].endswith("/" + remote.name)


def test_cli_data_check_and_fetch(folder, fake_remote, capsys):
    make_mnist_npz(folder)
    assert cli.main(["data", "check", "--dir", str(folder)]) == 0
    report = capsys.readouterr().out
    assert "[x] mnist.npz" in report and "-> train: mnist.npz" in report
    assert "companion data fetch cifar10" in report
    _, mirror = fake_remote
    assert cli.main(["data", "fetch", "mnist", "--dir", str(folder), "--url",
                     mirror.as_uri()]) == 0
    assert "SHA-256 ok" in capsys.readouterr().out
    assert cli.main(["data", "fetch", "gaussian", "--dir", str(folder)]) == 1


# ----------------------------------------------------------------------------- real copies

def pixel_statistics(x: torch.Tensor) -> tuple[float, float]:
    """Mean and (population) std of uint8 pixels scaled to [0, 1], exactly, from a histogram."""
    counts = torch.bincount(x.flatten(), minlength=256).double().numpy()
    values = np.arange(256) / 255.0
    mean = (counts * values).sum() / counts.sum()
    return mean, float(np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum()))


def test_real_offline_copies(monkeypatch):
    folder = paths.data_dir()
    if not (folder / "mnist.npz").is_file() and not (folder / "cifar10_jpeg.npz").is_file():
        pytest.skip(f"no offline copies in {folder} (set COMPANION_DATA)")
    # Share the user's cache, so that the copies are decoded once rather than on every run.
    if USER_CACHE:
        monkeypatch.setenv("XDG_CACHE_HOME", USER_CACHE)
    else:
        monkeypatch.delenv("XDG_CACHE_HOME")
    if (folder / "mnist.npz").is_file():
        train, test = data.load("mnist"), data.load("mnist", "test")
        assert tuple(train.x.shape) == (60000, 1, 28, 28) and len(test) == 10000
        assert train.y[:5].tolist() == [5, 0, 4, 1, 9] and test.y[:3].tolist() == [7, 2, 1]
        mean, std = pixel_statistics(train.x[:, 0])  # NORMALIZATION's constants come from here
        assert abs(mean - data.NORMALIZATION["mnist"][0][0]) < 1e-12
        assert abs(std - data.NORMALIZATION["mnist"][1][0]) < 1e-12
    if (folder / "cifar10_jpeg.npz").is_file():
        test = data.load("cifar10", "test")
        assert tuple(test.x.shape) == (10000, 3, 32, 32) and test.x.dtype == torch.uint8
        assert torch.equal(test.y.bincount(), torch.full((10,), 1000))
        assert test.classes[0] == "airplane" and "JPEG q75" in test.source
        for channel in range(3):  # JPEG q75 test images against the official training mean
            mean, _ = pixel_statistics(test.x[:, channel])
            assert abs(mean - data.NORMALIZATION["cifar10"][0][channel]) < 0.01
