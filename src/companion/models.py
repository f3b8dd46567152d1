"""The networks of the four papers, each split into ``features`` and a linear ``classifier``.

Every model returned here has

* ``model.features(x)``: the penultimate representation h (what neural-collapse metrics and
  the unconstrained-features analyses look at), shape (N, d);
* ``model.classifier``: the last ``nn.Linear`` (W, b), so ``model(x) == classifier(features(x))``.
  Under autocast the classifier still runs in float32 (:func:`last_layer`): the logits, and the
  loss on them, are not quantized to bf16 (whose spacing at 15, the MSE target, is 0.0625).

=========== ============================================== =====================================
model       architecture                                   used by
=========== ============================================== =====================================
mlp         Linear [-> BatchNorm] -> activation, repeated  all papers' small experiments
resnet18    CIFAR ResNet-18: 3x3 stem, no max-pool          nc_losses, unhinged, rooted_loss
wide_resnet50 CIFAR ResNet-50, bottleneck width multiplier  nc_losses (the paper's WideResNet-50)
myrtle      Myrtle5/7/10: conv-ReLU stages, average pool    dynamical_loss (CIFAR-10)
vit         ViT for 32x32 images, patch 4, pre-norm         rooted_loss (the official code's ViT)
=========== ============================================== =====================================

No torchvision: each architecture is written out here, with its source in its docstring.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid,
               "identity": nn.Identity}


def last_layer(linear: nn.Linear, h: torch.Tensor) -> torch.Tensor:
    """``linear(h)`` in the layer's own precision (float32) even under autocast.

    Autocast would run the last matmul in bf16 and return bf16 logits: with MSE's target 15
    (bf16 spacing 0.0625) that quantizes the terminal-phase residual which NC metrics and the
    loss zoo measure. Outside autocast this is exactly ``linear(h)``.
    """
    device_type = h.device.type
    if torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            return linear(h.to(linear.weight.dtype))
    return linear(h)


class Classifier(nn.Module):
    """A feature extractor followed by one linear layer: ``forward = classifier(features(x))``."""

    def __init__(self, body: nn.Module, classifier: nn.Linear):
        super().__init__()
        self.body = body
        self.classifier = classifier

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features h(x), shape (N, classifier.in_features)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return last_layer(self.classifier, self.features(x))


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


# -- MLP -------------------------------------------------------------------------------------


def mlp(in_features: int, hidden: int | Sequence[int], num_classes: int, activation: str = "relu",
        batchnorm: bool = False) -> Classifier:
    """Fully connected net: (Linear [-> BatchNorm1d] -> activation) per hidden width, then Linear.

    ``hidden`` is one width or a list of widths (``[]`` gives a linear model whose features are
    the flattened input). Inputs are flattened, so images can be fed directly. This is the
    MLP of the NC paper's CPU pilot (784-256-256-256 with BatchNorm), of the dynamical-loss
    spiral (one hidden ReLU layer of width 100) and of the rooted-loss digits pilot (64-128-10).
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    widths = [hidden] if isinstance(hidden, int) else list(hidden)
    layers: list[nn.Module] = [nn.Flatten()]
    previous = in_features
    for width in widths:
        layers.append(nn.Linear(previous, width))
        if batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(ACTIVATIONS[activation]())
        previous = width
    return Classifier(nn.Sequential(*layers), nn.Linear(previous, num_classes))


# -- ResNet-18 (CIFAR) -----------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN) shortcut, He et al. (2016)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, relu_out: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
        self.relu_out = relu_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return torch.relu(out) if self.relu_out else out


def resnet18(num_classes: int = 10, width: float = 1.0, in_channels: int = 3,
             final_relu: bool = True) -> Classifier:
    """ResNet-18 for 32x32 images: the CIFAR variant of He et al., arXiv 1512.03385 (CVPR 2016).

    Stem: one 3x3 conv (stride 1) -> BN -> ReLU, no max-pool, as in the CIFAR ResNets of the
    NC paper's code (``jinxinzhou/nc_loss``, ``Net/resnet.py``), ``tding1/Neural-Collapse`` and
    ``kuangliu/pytorch-cifar``; then four stages of two BasicBlocks with 64, 128, 256, 512
    channels (strides 1, 2, 2, 2), global average pooling and a linear classifier. ``width``
    multiplies every channel count (11.17M parameters at width 1 with 10 classes; feature
    dimension 512 * width). ``final_relu=False`` drops the ReLU after the last block, so that
    features can take negative values (the unhinged paper's setting, its Sec. 4.1).

    Initialization as torchvision's ResNet: Kaiming-normal (fan_out) convs, BN weight 1, bias 0.
    """
    planes = [_scaled(c, width) for c in (64, 128, 256, 512)]
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, planes[0], 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(planes[0]),
        nn.ReLU(inplace=True),
    ]
    in_planes = planes[0]
    for stage, (out_planes, stride) in enumerate(zip(planes, (1, 2, 2, 2))):
        last_stage = stage == 3
        layers.append(BasicBlock(in_planes, out_planes, stride))
        layers.append(BasicBlock(out_planes, out_planes, 1, relu_out=final_relu or not last_stage))
        in_planes = out_planes
    return _pooled_resnet(layers, in_planes, num_classes)


def _pooled_resnet(layers: list[nn.Module], feature_dim: int, num_classes: int) -> Classifier:
    """Global average pooling after ``layers``, a linear classifier, and the He et al. (2016)
    initialization shared by both ResNets (Kaiming fan-out convs, BN at weight 1 / bias 0)."""
    layers = [*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    model = Classifier(nn.Sequential(*layers), nn.Linear(feature_dim, num_classes))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


# -- WideResNet-50 (CIFAR) -------------------------------------------------------------------


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 conv-BN with a shortcut; the inner width is scaled by ``width``
    while the output stays 4 * planes (so the feature dimension does not depend on ``width``)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1, width: float = 1.0):
        super().__init__()
        inner, out_planes = int(planes * width), 4 * planes
        self.conv1 = nn.Conv2d(in_planes, inner, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner)
        self.conv2 = nn.Conv2d(inner, inner, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(inner)
        self.conv3 = nn.Conv2d(inner, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out_planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def wide_resnet50(num_classes: int = 10, width: float = 1.0, in_channels: int = 3) -> Classifier:
    """The NC paper's WideResNet-50 for 32x32 images (``wide_resnet50_cifar`` of jinxinzhou/nc_loss).

    A ResNet-50 (bottleneck blocks [3, 4, 6, 3], He et al. 2016) with the CIFAR stem of
    :func:`resnet18` (3x3 conv, stride 1, no max-pool). ``width`` multiplies only the inner
    bottleneck channels (int(planes * width)); block outputs stay 4 * planes, so the feature
    dimension is 2048 for every width and width 2 is torchvision's wide_resnet50_2 body. The
    paper trains widths 0.25, 0.5, 1, 2. Initialization as :func:`resnet18`.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
    ]
    in_planes = 64
    for planes, blocks, stride in zip((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2)):
        for index in range(blocks):
            layers.append(Bottleneck(in_planes, planes, stride if index == 0 else 1, width))
            in_planes = 4 * planes
    return _pooled_resnet(layers, in_planes, num_classes)


# -- Myrtle ----------------------------------------------------------------------------------

#: conv-ReLU layers in each of the three stages, per depth (neural-tangents' MyrtleNetwork).
MYRTLE_STAGES = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}


def myrtle(num_classes: int = 10, channels: int = 64, batchnorm: bool = True, depth: int = 5,
           in_channels: int = 3) -> Classifier:
    """Myrtle network of Shankar et al., "Neural Kernels Without Tangents" (ICML 2020, arXiv 2003.02237).

    As ``MyrtleNetwork(depth)`` in the neural-tangents notebook
    ``myrtle_kernel_with_neural_tangents.ipynb`` (named after Myrtle.ai's fast CIFAR ResNet):
    stage 1 = ``d1`` x [3x3 conv -> ReLU] -> 2x2 avg-pool, stage 2 = ``d2`` x [conv -> ReLU] ->
    avg-pool, stage 3 = ``d3`` x [conv -> ReLU] -> avg-pool x 3, flatten, dense; (d1, d2, d3) =
    (2, 1, 1) for depth 5 (four convs and the dense layer). Every conv has ``channels`` output
    channels and SAME padding, so a 32x32 image ends as a ``channels``-dim feature vector.
    ``batchnorm=True`` inserts BatchNorm2d between each conv and its ReLU (not in the original,
    which is a kernel architecture; it makes finite-width SGD training easier). Convs are
    Kaiming-normal (W_std = sqrt(2), the notebook's standard parameterization) with zero bias.
    """
    if depth not in MYRTLE_STAGES:
        raise ValueError(f"depth must be one of {sorted(MYRTLE_STAGES)}, got {depth}")
    layers: list[nn.Module] = []
    previous = in_channels
    for stage, repeats in enumerate(MYRTLE_STAGES[depth]):
        for _ in range(repeats):
            conv = nn.Conv2d(previous, channels, 3, padding=1, bias=not batchnorm)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            layers.append(conv)
            if batchnorm:
                layers.append(nn.BatchNorm2d(channels))
            layers.append(nn.ReLU(inplace=True))
            previous = channels
        layers += [nn.AvgPool2d(2) for _ in range(3 if stage == 2 else 1)]
    layers.append(nn.Flatten())
    return Classifier(nn.Sequential(*layers), nn.Linear(channels, num_classes))


# -- ViT -------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention with ``heads`` x ``dim_head`` inner width."""

    def __init__(self, dim: int, heads: int, dim_head: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attended = nn.functional.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, -1))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + Attention(LN(x)), then x + MLP(LN(x)) with GELU."""

    def __init__(self, dim: int, heads: int, dim_head: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads, dim_head, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViTFeatures(nn.Module):
    """Patch embedding, class token, position embedding, transformer, final LayerNorm, pooling."""

    def __init__(self, image_size: int, patch: int, in_channels: int, dim: int, depth: int,
                 heads: int, dim_head: int, mlp_dim: int, dropout: float, pool: str):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of patch {patch}")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {pool!r}")
        num_patches = (image_size // patch) ** 2
        self.pool = pool
        # A patch x patch conv with stride patch is the linear map of each flattened patch.
        self.patch_embedding = nn.Conv2d(in_channels, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, dim))
        self.position = nn.Parameter(0.02 * torch.randn(1, num_patches + 1, dim))
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*[TransformerBlock(dim, heads, dim_head, mlp_dim, dropout)
                                      for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embedding(x).flatten(2).transpose(1, 2)  # (N, patches, dim)
        cls = self.cls_token.expand(len(tokens), -1, -1)
        tokens = self.dropout(torch.cat([cls, tokens], dim=1) + self.position)
        tokens = self.norm(self.blocks(tokens))
        return tokens[:, 0] if self.pool == "cls" else tokens[:, 1:].mean(dim=1)


def vit(num_classes: int = 10, image_size: int = 32, patch: int = 4, dim: int = 256, depth: int = 6,
        heads: int = 8, mlp_dim: int = 512, dropout: float = 0.0, *, pool: str = "cls",
        dim_head: int | None = None, in_channels: int = 3) -> Classifier:
    """Vision Transformer of Dosovitskiy et al., arXiv 2010.11929 (ICLR 2021), sized for 32x32.

    Patch-4 embedding (64 tokens on 32x32), a learned class token and position embedding,
    ``depth`` pre-norm transformer blocks (``heads`` heads, GELU MLP of width ``mlp_dim``), a
    final LayerNorm, then the class token (``pool="cls"``) or the mean of the patch tokens
    (``pool="mean"``) as the feature vector. This is the layout of ``lucidrains/vit-pytorch``'s
    ``ViT``, which the rooted-loss code trains on CIFAR (``vit_small``: dim 512, depth 6,
    heads 8, mlp_dim 512, dropout 0.1; that package uses ``dim_head=64``; here ``dim_head``
    defaults to ``dim // heads``).
    """
    if dim_head is None:
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}; pass dim_head")
        dim_head = dim // heads
    body = ViTFeatures(image_size, patch, in_channels, dim, depth, heads, dim_head, mlp_dim,
                       dropout, pool)
    return Classifier(body, nn.Linear(dim, num_classes))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
