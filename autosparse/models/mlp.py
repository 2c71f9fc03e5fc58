"""Fully connected networks: LeNet-300-100 and the general MLP.

They flatten whatever they are given, so one architecture serves Fashion-MNIST (1x28x28),
CIFAR (3x32x32), sklearn digits (1x8x8) and MNIST-1D (1x40). LeNet-300-100 is the small
network of the lottery-ticket and pruning-at-initialisation literature; the MLP with other
widths supplies the *source* architectures the learned scorer is trained on (e.g. 784-500-150)
while LeNet-300-100 is held out.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from torch import nn

from autosparse.models.building import init_weights
from autosparse.models.registry import register_model


class MLP(nn.Sequential):
    """Flatten, then Linear+ReLU per hidden width, then a linear classifier.

    Layers are named ``fc1``, ``fc2``, ... so masks and features refer to stable, readable names
    (``fc1.weight``) rather than Sequential indices.
    """

    def __init__(self, in_features: int, widths: tuple[int, ...], num_classes: int) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
        prev = in_features
        for i, w in enumerate(widths, start=1):
            layers[f"fc{i}"] = nn.Linear(prev, w)
            layers[f"relu{i}"] = nn.ReLU()
            prev = w
        layers[f"fc{len(widths) + 1}"] = nn.Linear(prev, num_classes)
        super().__init__(layers)
        self.widths = widths


@register_model("lenet_300_100", inputs=("flat",))
def lenet_300_100(input_shape: tuple[int, ...], num_classes: int, *, init: str = "kaiming_normal") -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998): an MLP with hidden widths 300 and 100."""
    return init_weights(MLP(math.prod(input_shape), (300, 100), num_classes), init)


@register_model("mlp", inputs=("flat",))
def mlp(
    input_shape: tuple[int, ...],
    num_classes: int,
    *,
    widths: tuple[int, ...] = (300, 100),
    init: str = "kaiming_normal",
) -> nn.Module:
    """MLP with any hidden widths (widths="500,150"); flattens its input."""
    return init_weights(MLP(math.prod(input_shape), tuple(widths), num_classes), init)
