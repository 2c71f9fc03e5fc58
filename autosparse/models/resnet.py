"""CIFAR ResNets (He et al. 2016, Sec. 4.2): ResNet-20, -32 and -56.

A 3x3 stem convolution, three stages of (depth - 2) / 6 basic blocks with 16, 32, 64 channels
(times ``width``; the first block of stages 2 and 3 halves the resolution), global average
pooling and one linear classifier. BatchNorm after every convolution; no bias on convolutions.

Shortcuts where the shape changes:

- ``shortcut="B"`` (default): a 1x1 strided convolution + BatchNorm, as in open_lth and
  Synaptic-Flow's lottery ResNets, so this zoo's numbers are comparable with theirs. The
  projection is itself a prunable layer and gives ``graph.py`` a residual edge with weights.
- ``shortcut="A"``: He et al.'s parameter-free option -- subsample by 2 and zero-pad the new
  channels -- for comparisons with the original paper's CIFAR setup.

Identity shortcuts elsewhere. Global average pooling makes every image size >= 8 work
(8x8 digits reach the last stage at 2x2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.errors import ConfigError, UnknownNameError
from autosparse.models.building import check_width, init_weights, scaled
from autosparse.models.registry import register_model

SHORTCUTS = ("A", "B")


class PadShortcut(nn.Module):
    """Option-A shortcut: take every other pixel and zero-pad the extra channels (no parameters)."""

    def __init__(self, pad_before: int, pad_after: int) -> None:
        super().__init__()
        self.pad = (0, 0, 0, 0, pad_before, pad_after)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], self.pad)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection (He et al.'s CIFAR block)."""

    def __init__(self, f_in: int, f_out: int, downsample: bool, shortcut: str) -> None:
        super().__init__()
        stride = 2 if downsample else 1
        self.conv1 = nn.Conv2d(f_in, f_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(f_out)
        self.conv2 = nn.Conv2d(f_out, f_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(f_out)
        self.shortcut: nn.Module
        if not downsample and f_in == f_out:
            self.shortcut = nn.Identity()
        elif shortcut == "B":
            self.shortcut = nn.Sequential(nn.Conv2d(f_in, f_out, 1, stride=stride, bias=False), nn.BatchNorm2d(f_out))
        else:
            extra = f_out - f_in
            self.shortcut = PadShortcut(extra // 2, extra - extra // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem conv-BN-ReLU, ``blocks`` (all stages in one Sequential), average pool, ``fc``."""

    def __init__(self, in_channels: int, num_classes: int, depth: int, width: float, shortcut: str) -> None:
        super().__init__()
        n = (depth - 2) // 6
        plan = [scaled(16, width), scaled(32, width), scaled(64, width)]
        self.conv = nn.Conv2d(in_channels, plan[0], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(plan[0])
        blocks: list[nn.Module] = []
        prev = plan[0]
        for stage, filters in enumerate(plan):
            for i in range(n):
                blocks.append(BasicBlock(prev, filters, downsample=stage > 0 and i == 0, shortcut=shortcut))
                prev = filters
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.conv(x)))
        out = self.pool(self.blocks(out))
        return self.fc(torch.flatten(out, 1))


def _make(depth: int) -> None:
    name = f"resnet{depth}"

    @register_model(
        name,
        inputs=("image",),
        description=f"CIFAR ResNet-{depth} (He et al. 2016): 3 stages x {(depth - 2) // 6} basic blocks, "
        "16/32/64 channels, BN, 1x1-conv (B) or zero-pad (A) shortcuts",
    )
    def build(
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width: float = 1.0,
        shortcut: str = "B",
        init: str = "kaiming_normal",
    ) -> nn.Module:
        check_width(name, width)
        if shortcut.upper() not in SHORTCUTS:
            raise UnknownNameError("resnet shortcut option", shortcut, SHORTCUTS)
        c, h, w = input_shape
        if min(h, w) < 8:
            raise ConfigError(
                f"{name} cannot take input shape {input_shape}: it needs images of at least 8x8, "
                "such as (1, 28, 28), (3, 32, 32) or (1, 8, 8)"
            )
        return init_weights(CifarResNet(c, num_classes, depth, width, shortcut.upper()), init)


for _depth in (20, 32, 56):
    _make(_depth)
