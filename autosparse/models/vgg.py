"""CIFAR VGG-11/13/16/19 with BatchNorm, as in open_lth and Synaptic-Flow's lottery VGGs.

The convolutional plan of Simonyan & Zisserman's configurations A, B, D and E (3x3 conv-BN-ReLU,
2x2 max pooling between stages), then global average pooling and *one* linear classifier
(512 -> classes) instead of ImageNet VGG's three 4096-wide layers: this is the VGG-16-BN
whose Synaptic-Flow numbers the design notes quote. On 32x32 the last feature map is 2x2 and
the average pool is the references' ``AvgPool2d(2)``; an adaptive pool makes the same network
accept 28x28: there the maps go 28 -> 14 -> 7 -> 3 -> 1, so the last stage's convolutions (VGG-16's
last three) see 1x1 maps and only their kernels' centre taps ever read data, about 43% of VGG-16's
weights (docs/BASELINES.md says what that does to the baselines). Convolutions have no bias (the
following BatchNorm would cancel it).

Small inputs: a max pool is dropped when the feature map is already 1 pixel, so 8x8 digits
run with three poolings instead of four; images below 8x8 are rejected.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.models.building import check_width, init_weights, scaled
from autosparse.models.registry import register_model

_PLANS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class VGG(nn.Module):
    """``features`` (conv-BN-ReLU and pools), global average ``pool``, one linear ``fc``."""

    def __init__(self, input_shape: tuple[int, ...], num_classes: int, plan: list[int | str], width: float) -> None:
        super().__init__()
        c, h, w = input_shape
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        prev, conv_i, pool_i = c, 0, 0
        for spec in plan:
            if spec == "M":
                if min(h, w) >= 2:
                    pool_i += 1
                    layers[f"pool{pool_i}"] = nn.MaxPool2d(2)
                    h, w = h // 2, w // 2
                continue
            conv_i += 1
            out = scaled(int(spec), width)
            layers[f"conv{conv_i}"] = nn.Conv2d(prev, out, 3, padding=1, bias=False)
            layers[f"bn{conv_i}"] = nn.BatchNorm2d(out)
            layers[f"relu{conv_i}"] = nn.ReLU()
            prev = out
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


def _make(depth: int) -> None:
    name = f"vgg{depth}"

    @register_model(
        name,
        inputs=("image",),
        description=f"CIFAR VGG-{depth}-BN (open_lth / Synaptic-Flow): 3x3 conv-BN-ReLU stages, "
        "global average pool, one linear classifier",
    )
    def build(
        input_shape: tuple[int, ...], num_classes: int, *, width: float = 1.0, init: str = "kaiming_normal"
    ) -> nn.Module:
        check_width(name, width)
        if min(input_shape[1:]) < 8:
            raise ConfigError(
                f"{name} cannot take input shape {input_shape}: it needs images of at least 8x8, "
                "such as (3, 32, 32), (1, 28, 28) or (1, 8, 8)"
            )
        return init_weights(VGG(input_shape, num_classes, _PLANS[depth], width), init)


for _depth in _PLANS:
    _make(_depth)
