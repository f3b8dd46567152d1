"""Models: output shapes, forward == classifier(features(x)), parameter counts from the architecture."""

from __future__ import annotations

import pytest
import torch

from companion import models


def _images(n: int = 3, channels: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(0))


SMALL_MODELS = {
    "mlp": lambda: models.mlp(3 * 32 * 32, [32, 16], 7, batchnorm=True),
    "resnet18": lambda: models.resnet18(num_classes=7, width=0.125),
    "myrtle": lambda: models.myrtle(num_classes=7, channels=8),
    "myrtle_nobn": lambda: models.myrtle(num_classes=7, channels=8, batchnorm=False),
    "vit_cls": lambda: models.vit(num_classes=7, dim=32, depth=2, heads=4, mlp_dim=64),
    "vit_mean": lambda: models.vit(num_classes=7, dim=32, depth=2, heads=4, mlp_dim=64, pool="mean"),
}
FEATURE_DIMS = {"mlp": 16, "resnet18": 64, "myrtle": 8, "myrtle_nobn": 8, "vit_cls": 32, "vit_mean": 32}


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_shapes_and_classifier_of_features(name):
    torch.manual_seed(0)
    model = SMALL_MODELS[name]().eval()
    x = _images()
    with torch.no_grad():
        logits, features = model(x), model.features(x)
    assert logits.shape == (3, 7)
    assert features.shape == (3, FEATURE_DIMS[name])
    assert isinstance(model.classifier, torch.nn.Linear)
    assert model.classifier.in_features == FEATURE_DIMS[name]
    # the classifier is the last linear layer: applied by hand to the features it gives the logits
    by_hand = features @ model.classifier.weight.T + model.classifier.bias
    torch.testing.assert_close(logits, by_hand, rtol=1e-5, atol=1e-6)


def test_resnet18_has_the_usual_cifar_parameter_count():
    # 11,173,962: the CIFAR ResNet-18 of kuangliu/pytorch-cifar and the NC papers' code (K = 10)
    assert models.count_parameters(models.resnet18()) == 11_173_962
    assert _resnet18_count(64) == 11_173_962  # the layer-by-layer count below agrees


def _resnet18_count(c: int, num_classes: int = 10) -> int:
    """ResNet-18 parameters from the architecture, stage widths c, 2c, 4c, 8c."""
    conv = lambda cin, cout, k: cin * cout * k * k  # noqa: E731
    bn = lambda ch: 2 * ch  # noqa: E731
    total = conv(3, c, 3) + bn(c)
    cin = c
    for cout in (c, 2 * c, 4 * c, 8 * c):
        for block in range(2):
            first_in = cin if block == 0 else cout
            total += conv(first_in, cout, 3) + bn(cout) + conv(cout, cout, 3) + bn(cout)
            if first_in != cout:
                total += conv(first_in, cout, 1) + bn(cout)
        cin = cout
    return total + 8 * c * num_classes + num_classes


@pytest.mark.parametrize("width", [0.25, 0.5])
def test_resnet18_width_scales_every_channel_count(width):
    model = models.resnet18(num_classes=100, width=width)
    assert models.count_parameters(model) == _resnet18_count(int(64 * width), num_classes=100)
    assert model.classifier.in_features == int(512 * width)


def test_resnet18_final_relu_off_allows_negative_features():
    torch.manual_seed(0)
    with_relu = models.resnet18(width=0.125).eval()
    without = models.resnet18(width=0.125, final_relu=False).eval()
    without.load_state_dict(with_relu.state_dict())
    x = _images(8)
    with torch.no_grad():
        assert (with_relu.features(x) >= 0).all()
        assert (without.features(x) < 0).any()


@pytest.mark.parametrize("batchnorm", [True, False])
@pytest.mark.parametrize("depth", [5, 7, 10])
def test_myrtle_parameter_count(depth, batchnorm):
    c = 16
    convs = {5: 4, 7: 6, 10: 9}[depth]
    # conv weights, then BN (weight + bias) or conv bias per layer, then the dense layer
    expected = 3 * 9 * c + (convs - 1) * 9 * c * c + convs * (2 * c if batchnorm else c) + 10 * c + 10
    model = models.myrtle(channels=c, batchnorm=batchnorm, depth=depth)
    assert models.count_parameters(model) == expected
    assert sum(isinstance(m, torch.nn.Conv2d) for m in model.modules()) == convs
    assert sum(isinstance(m, torch.nn.AvgPool2d) for m in model.modules()) == 5  # 32 -> 1


def test_vit_parameter_count():
    dim, depth, heads, mlp_dim, patch, k = 48, 3, 4, 96, 4, 10
    tokens = (32 // patch) ** 2 + 1
    embed = 3 * patch * patch * dim + dim + dim + tokens * dim  # patch conv, cls token, positions
    block = (2 * 2 * dim  # two LayerNorms
             + dim * 3 * dim + dim * dim + dim  # qkv (no bias), output projection
             + dim * mlp_dim + mlp_dim + mlp_dim * dim + dim)
    expected = embed + depth * block + 2 * dim + dim * k + k
    model = models.vit(num_classes=k, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim, patch=patch)
    assert models.count_parameters(model) == expected


def test_vit_dim_head_and_validation():
    model = models.vit(dim=32, depth=1, heads=4, mlp_dim=32, dim_head=16)
    assert model.body.blocks[0].attention.qkv.out_features == 3 * 4 * 16
    with pytest.raises(ValueError, match="divisible"):
        models.vit(dim=30, heads=4)
    with pytest.raises(ValueError, match="pool"):
        models.vit(pool="max")
    with pytest.raises(ValueError, match="multiple"):
        models.vit(image_size=30, patch=4)


def test_mlp_counts_activation_and_flattening():
    model = models.mlp(64, [32, 16], 10)
    assert models.count_parameters(model) == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    linear = models.mlp(5, [], 3)  # a linear model: the features are the inputs
    x = torch.randn(4, 5)
    torch.testing.assert_close(linear.features(x), x)
    tanh = models.mlp(5, 4, 3, activation="tanh")
    assert tanh.features(torch.randn(6, 5)).abs().max() < 1
    images = models.mlp(2 * 3 * 3, 4, 3)
    assert images(torch.randn(2, 2, 3, 3)).shape == (2, 3)
    with pytest.raises(ValueError, match="activation"):
        models.mlp(5, 4, 3, activation="swish")


def test_models_run_in_float64():
    model = models.myrtle(channels=4, batchnorm=False).double()
    assert model(_images(2).double()).dtype == torch.float64


def _wide_resnet50_count(width: float, num_classes: int = 10) -> int:
    """Layer-by-layer parameter count of the CIFAR WideResNet-50 (bottleneck [3, 4, 6, 3])."""
    total = 3 * 64 * 9 + 2 * 64  # 3x3 stem conv + BN
    in_planes = 64
    for planes, blocks in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        inner, out = int(planes * width), 4 * planes
        for index in range(blocks):
            total += in_planes * inner + 2 * inner + 9 * inner * inner + 2 * inner + inner * out + 2 * out
            if index == 0:  # projection shortcut (channel change or stride)
                total += in_planes * out + 2 * out
            in_planes = out
    return total + 2048 * num_classes + num_classes


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0, 2.0])
def test_wide_resnet50_counts_and_feature_dimension(width):
    model = models.wide_resnet50(num_classes=100, width=width)
    assert models.count_parameters(model) == _wide_resnet50_count(width, num_classes=100)
    assert model.classifier.in_features == 2048  # the width only scales the inner channels


def test_wide_resnet50_width2_is_torchvisions_body():
    # torchvision's wide_resnet50_2 has 68,883,240 parameters with a 7x7 stem (9,408 weights)
    # and a 1000-class head; ours has a 3x3 stem (1,728) and a 10-class head.
    expected = 68_883_240 - (9_408 - 1_728) - (2048 * 1000 + 1000) + (2048 * 10 + 10)
    assert models.count_parameters(models.wide_resnet50(width=2.0)) == expected
    # the NC digest's counts for widths 0.25 and 1 (5.9M, 23.5M at K = 10)
    assert round(models.count_parameters(models.wide_resnet50(width=0.25)) / 1e6, 1) == 5.9
    assert round(models.count_parameters(models.wide_resnet50(width=1.0)) / 1e6, 1) == 23.5


def test_wide_resnet50_forward_is_classifier_of_features():
    torch.manual_seed(0)
    model = models.wide_resnet50(num_classes=7, width=0.25).eval()
    x = _images(2)
    with torch.no_grad():
        logits, features = model(x), model.features(x)
    assert features.shape == (2, 2048) and logits.shape == (2, 7)
    torch.testing.assert_close(logits, features @ model.classifier.weight.T + model.classifier.bias,
                               rtol=1e-5, atol=1e-5)
