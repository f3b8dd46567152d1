"""GPU-side fixes of issue 15 item 5, tested on the CPU: cached normalization statistics, a
float32 last layer and loss under bf16 autocast, and side_by_side's guards (per-job generators,
fail fast). The per-cell timeout default is tested in tests/test_gpu_plan.py."""

import time

import pytest
import torch

from companion import data, heads, losses, models, train
from companion.data import transforms


def test_normalization_statistics_are_made_once_per_dataset_and_device(monkeypatch):
    transforms._STATISTICS.clear()
    made = []
    original = torch.tensor
    monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or original(*a, **k))
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    outputs = [data.to_float(x, "cifar10") for _ in range(3)]
    assert len(made) == 2  # mean and std, once
    assert transforms.statistics("cifar10", "cpu") is transforms.statistics("cifar10", torch.device("cpu"))
    mean, std = (original(v).view(-1, 1, 1) for v in data.NORMALIZATION["cifar10"])
    for out in outputs:
        assert torch.equal(out, (x.float() / 255.0 - mean) / std)
    with torch.inference_mode():  # first made under inference_mode: still ordinary tensors
        transforms._STATISTICS.clear()
        data.to_float(x, "cifar10")
    assert not transforms.statistics("cifar10")[0].is_inference()


def _models():
    torch.manual_seed(0)
    resnet = models.resnet18(10, width=0.125)
    yield "mlp", models.mlp(3 * 8 * 8, [16], 10), torch.randn(5, 3, 8, 8)
    yield "resnet18", resnet, torch.randn(5, 3, 8, 8)
    yield "myrtle", models.myrtle(10, channels=8), torch.randn(5, 3, 32, 32)
    yield "vit", models.vit(10, image_size=8, patch=4, dim=16, depth=1, heads=2, mlp_dim=16), torch.randn(5, 3, 8, 8)
    yield "pal", heads.pal(models.resnet18(10, width=0.125), 10, scale=15.0), torch.randn(5, 3, 8, 8)
    yield "fnpal", heads.pal(models.resnet18(10, width=0.125), 10, normalize=True), torch.randn(5, 3, 8, 8)


@pytest.mark.parametrize("name, model, x", list(_models()), ids=[m[0] for m in _models()])
def test_the_last_layer_runs_in_float32_under_bf16_autocast(name, model, x):
    model.eval()
    with torch.no_grad():
        plain = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(x)
            features = model.features(x)
        assert plain.dtype == torch.float32 and logits.dtype == torch.float32
        if name in ("resnet18", "myrtle"):  # the body did run in bf16 (the ViT ends with a float32 LayerNorm)
            assert features.dtype == torch.bfloat16
        if name in ("mlp", "resnet18", "myrtle", "vit"):  # exactly the float32 layer on those features
            assert torch.equal(logits, model.classifier(features.float()))


def test_fit_computes_the_loss_in_float32_outside_autocast():
    seen = []
    mse = losses.get("mse", scale=15.0)

    def loss(logits, y):
        seen.append((logits.dtype, torch.is_autocast_enabled("cpu")))
        return mse(logits, y)

    torch.manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8), torch.arange(16) % 10
    train.fit(models.resnet18(10, width=0.125), loss, (x, y), epochs=1, batch_size=8, lr=0.01, amp=True,
              eval_sets={"train": (x, y)}, progress=False, seed=0)
    assert seen and set(seen) == {(torch.float32, False)}


def test_side_by_side_in_threads_keeps_order_and_equals_sequential_runs():
    x = torch.randn(30, 4, generator=torch.Generator().manual_seed(0))
    y = torch.arange(30) % 3
    initial = {}
    for seed in (0, 1, 2):  # seeded in the calling thread
        torch.manual_seed(seed)
        initial[seed] = models.mlp(4, [6], 3).state_dict()

    def job(seed):
        model = models.mlp(4, [6], 3)
        model.load_state_dict(initial[seed])
        train.fit(model, losses.get("ce"), (x, y), epochs=3, batch_size=10, lr=0.1, progress=False, seed=seed)
        return seed, float(model(x).detach().sum())

    jobs = [(0,), (1,), (2,)]
    assert train.side_by_side(job, jobs, workers=3, threads=True) == [job(*j) for j in jobs]


def test_side_by_side_refuses_the_shared_generators_in_its_threads():
    originals = torch.manual_seed, torch.cuda.manual_seed_all

    def reseed():
        torch.manual_seed(1)

    def cuda_reseed():
        torch.cuda.manual_seed_all(1)

    def unseeded_fit():
        train.fit(models.mlp(4, [3], 2), losses.get("ce"), (torch.randn(4, 4), torch.arange(4) % 2),
                  epochs=1, lr=0.1, progress=False)

    def unseeded_augment():
        data.augment(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))

    for job, error, match in ((reseed, RuntimeError, "torch.manual_seed"),
                              (cuda_reseed, RuntimeError, "torch.cuda.manual_seed_all"),
                              (unseeded_fit, ValueError, "seed="),
                              (unseeded_augment, RuntimeError, "generator=")):
        with pytest.raises(error, match=match):
            train.side_by_side(job, [()], workers=2, threads=True)
    assert (torch.manual_seed, torch.cuda.manual_seed_all) == originals  # restored afterwards
    torch.manual_seed(0)  # and usable in this thread
    train.side_by_side(reseed, [()], workers=2)  # sequential on the CPU: nothing shared


def test_one_failing_job_fails_the_call_fast():
    started, stopped = [], []
    x, y = torch.randn(64, 4), torch.arange(64) % 2

    def job(kind):
        started.append(kind)
        if kind == "fail":
            time.sleep(0.2)  # the long run is under way
            raise ValueError("boom")
        try:
            train.fit(models.mlp(4, [8], 2), losses.get("ce"), (x, y), epochs=100_000, batch_size=8,
                      lr=0.01, progress=False, seed=0)
        except train.Cancelled:
            stopped.append(kind)
            raise

    begin = time.perf_counter()
    with pytest.raises(ValueError, match="boom"):
        train.side_by_side(job, [("long",), ("fail",), ("later",), ("later",)], workers=2, threads=True)
    assert time.perf_counter() - begin < 60  # 100k epochs would take far longer
    assert stopped == ["long"] and "later" not in started
    assert not train.in_side_by_side()  # this thread never was a worker
