"""The recipes of the rooted-loss notebooks: experiments.rlo_protocol and experiments.dcgan.

Each is checked against an independent computation (the same run spelled out with
companion.train / companion.gan directly), for determinism, and for the row's contract.
"""

import math

import numpy as np
import pytest
import torch

from companion import data, gan, losses, models, quantize, train
from companion.experiments import dcgan, rlo_protocol

TINY = dict(dataset="digits", arch="mlp", hidden=(16,), epochs=2, batch_size=256, lr=1e-2, n_test=100)


def test_rlo_protocol_run_is_the_official_recipe_spelled_out():
    config = rlo_protocol.Config(loss="rooted_gce", seed=3, **TINY)
    row = rlo_protocol.run(config)
    # the same run by hand: Adam, no weight decay, cosine over the run, the code's m(1 - p^(1/k))
    train_set = data.load("digits", "train", seed=0)
    test_set = data.load("digits", "test", n=100, seed=0)
    torch.manual_seed(3)
    model = models.mlp(64, [16], 10)
    history = train.fit(model, losses.get("rooted_gce", k=3.0, m=3.0), train_set, epochs=2, batch_size=256,
                        optimizer="adam", lr=1e-2, schedule="cosine", eval_sets={"test": (test_set.x, test_set.y)},
                        eval_loss=losses.get("ce"), progress=False, seed=3)
    assert [h["train_acc"] for h in row["history"]] == history.train_acc.tolist()
    assert row["test_acc"] == pytest.approx(float(history.test_acc.iloc[-1]), abs=0)
    assert row["diverged_epoch"] is None and row["test_size"] == 100 and row["config"]["loss"] == "rooted_gce"
    assert "quantized" not in row


def test_rlo_protocol_same_seed_same_start_for_every_loss_and_deterministic():
    a = rlo_protocol.Config(loss="ce", seed=1, **TINY)
    b = rlo_protocol.Config(loss="rooted", seed=1, **TINY)
    sample = torch.zeros(64)
    wa, wb = rlo_protocol.build(a, sample, 10), rlo_protocol.build(b, sample, 10)
    assert all(torch.equal(p, q) for p, q in zip(wa.parameters(), wb.parameters()))
    first, second = ([{k: v for k, v in h.items() if k != "seconds"} for h in rlo_protocol.run(a)["history"]]
                     for _ in range(2))
    assert first == second


def test_rlo_protocol_quantized_copies_match_companion_quantize():
    config = rlo_protocol.Config(loss="ce", quantize_bits=(8, 2), eval_every=2, **TINY)
    row = rlo_protocol.run(config)
    assert [(q["scheme"], q["bits"]) for q in row["quantized"]] == [
        ("per-channel", 8), ("per-channel", 2), ("per-tensor", 8), ("per-tensor", 2)]
    eight = {q["scheme"]: q["acc"] for q in row["quantized"] if q["bits"] == 8}
    assert all(abs(acc - row["test_acc"]) < 0.05 for acc in eight.values())
    # the weight statistic by hand on a known layer: max|w| / rms(w) of one channel
    layer = torch.nn.Linear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[3.0, 1.0, 1.0, 1.0]]))
    stats = rlo_protocol._weight_statistics(layer)
    assert stats["max_over_rms"] == pytest.approx(3.0 / math.sqrt(3.0))
    assert stats["weight_norm"] == pytest.approx(math.sqrt(12.0))
    assert len(row["history"]) == 1  # evaluated at the last epoch only
    assert quantize.QUANTIZED_LAYERS  # the layers the statistic covers


def test_rlo_protocol_rejects_unknown_names():
    with pytest.raises(ValueError):
        rlo_protocol.Config(arch="vgg")
    with pytest.raises(ValueError):
        rlo_protocol.Config(loss="mse")


GAN = dict(dataset="digits", steps=4, batch_size=32, lr=1e-3, latent_dim=8, width=8, record_every=2,
           classifier_epochs=1, n_test=64, samples=4)


def test_dcgan_run_is_gan_fit_spelled_out_and_pairs_the_losses():
    logistic = dcgan.run(dcgan.Config(loss="logistic", seed=2, **GAN))
    rooted = dcgan.run(dcgan.Config(loss="rooted", k=2.0, seed=2, **GAN))
    # the same initial networks: the untrained generator's distance agrees
    assert logistic["initial_fd"] == rooted["initial_fd"]
    assert [r["step"] for r in logistic["trajectory"]] == [2, 4]
    assert np.asarray(logistic["samples"]).shape == (4, 1, 8, 8) and not logistic["diverged"]
    # by hand with companion.gan and the shared reference
    ref = dcgan.reference_of(dcgan.Config(**GAN))
    torch.manual_seed(2)
    G, D = gan.Generator(8, 8, 1, 8), gan.Discriminator(8, 1, 8)
    history = gan.fit(G, D, ref.real_train, gan.AdversarialLoss("rooted", k=2.0), steps=4, batch_size=32, lr=1e-3,
                      seed=2, record_every=2)
    assert history.d_loss.tolist() == [r["d_loss"] for r in rooted["trajectory"]]
    fd = gan.frechet_distance(ref.features(G.sample(ref.n_fd, torch.Generator().manual_seed(dcgan.FD_LATENT_SEED))),
                              ref.test_features)
    assert rooted["trajectory"][-1]["fd"] == pytest.approx(fd, rel=1e-9)


def test_dcgan_reference_floor_is_the_real_images_distance():
    ref = dcgan.reference_of(dcgan.Config(**GAN))
    assert ref.n_fd == 64 and ref.real_test.min() >= -1 and ref.real_test.max() <= 1
    direct = gan.frechet_distance(ref.features(ref.real_train[:64]), ref.test_features)
    assert ref.floor == pytest.approx(direct) and ref.floor >= 0 and 0.1 < ref.classifier_acc <= 1
