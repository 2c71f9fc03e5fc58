"""MobileNet (Howard et al. 2017) for small images: depthwise-separable convolutions.

The zoo's one family with grouped convolutions, which is what it is for: a depthwise 3x3
convolution (``groups == channels``, one 3x3 kernel per channel, 9 weights per output channel)
followed by a pointwise 1x1 convolution is the building block of MobileNet, EfficientNet and
ConvNeXt, and a learned pruner must have seen one. The layout is MobileNet-v1's, as used for
CIFAR: a 3x3 stem (stride 1), then depthwise-separable blocks with the paper's channel plan
64, 128, 128, 256, 256, 512 x6, 1024, 1024 (times ``width``); the strides of the paper's
ImageNet network are kept only where the feature map is still at least 4 pixels, so 28x28 and
32x32 inputs end at 2x2 after the full plan. BatchNorm + ReLU after every convolution, global average pool and one
linear classifier. ``blocks`` truncates the plan (the first ``blocks`` blocks), for a network
that runs in seconds on a CPU.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.models.building import check_width, init_weights, scaled
from autosparse.models.registry import register_model

#: (output channels, stride) of each depthwise-separable block, MobileNet-v1's plan.
PLAN: tuple[tuple[int, int], ...] = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            bn=nn.BatchNorm2d(c_out),
            relu=nn.ReLU(),
        )
    )


class MobileNet(nn.Module):
    """``features`` (stem + depthwise/pointwise blocks), global average ``pool``, one linear ``fc``."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, width: float, blocks: int) -> None:
        super().__init__()
        c, h, w = input_shape
        stem = scaled(32, width)
        layers: OrderedDict[str, nn.Module] = OrderedDict(stem=_conv_bn(c, stem, 3, 1, 1))
        prev, size = stem, min(h, w)
        for i, (channels, stride) in enumerate(PLAN[:blocks], start=1):
            out = scaled(channels, width)
            s = stride if size >= 4 else 1
            size = (size + s - 1) // s
            layers[f"dw{i}"] = _conv_bn(prev, prev, 3, s, prev)
            layers[f"pw{i}"] = _conv_bn(prev, out, 1, 1, 1)
            prev = out
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_model("mobilenet", inputs=("image",))
def mobilenet(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    width: float = 1.0,
    blocks: int = len(PLAN),
    init: str = "kaiming_normal",
) -> nn.Module:
    """MobileNet-v1 (Howard et al. 2017): 3x3 stem, depthwise 3x3 + pointwise 1x1 blocks, BN, one linear."""
    check_width("mobilenet", width)
    if not 1 <= blocks <= len(PLAN):
        raise ConfigError(f"mobilenet option blocks={blocks} must be between 1 and {len(PLAN)} (the full network)")
    if min(input_shape[1:]) < 4:
        raise ConfigError(
            f"mobilenet cannot take input shape {input_shape}: it needs images of at least 4x4, "
            "such as (1, 28, 28), (3, 32, 32) or (1, 8, 8)"
        )
    return init_weights(MobileNet(input_shape, num_classes, width, blocks), init)
