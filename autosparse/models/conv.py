"""Conv-2, Conv-4 and Conv-6: the small VGG-like networks of the lottery-ticket paper.

Frankle & Carbin (2019, Fig. 2): blocks of two 3x3 "same" convolutions followed by 2x2 max
pooling -- 64-64-pool, then 128-128-pool, then 256-256-pool for Conv-2/4/6 -- and a classifier
of fully connected layers 256-256-classes. No BatchNorm and no dropout (the paper's dropout
variants are not reproduced). The paper used Glorot-normal weights; the zoo uses He-normal
(``init="kaiming_normal"``) like open_lth, which trains these ReLU networks at least as well
and keeps one initialisation across the lottery-ticket models.

``width`` scales every convolution *and* hidden fully connected layer, so ``width=0.125`` gives
a network with the same shape of connectivity that runs in milliseconds on a CPU.
8x8 digits still pool down to 1x1 after Conv-6's three pools, so all image sizes >= 8 work.

Conv-6 on 32x32 has 2.26M weights (1.14M in its convolutions), where Fig. 2 says 1.7M / 1.1M: the
convolutions agree, and the classifier the paper describes reads 4*4*256 = 4096 inputs, which gives
2.26M; tests/test_models.py checks Conv-2 and Conv-4 against the figure, and Conv-6's convolutions.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.models.building import check_width, init_weights, scaled
from autosparse.models.registry import register_model

_PLANS: dict[str, tuple[int, ...]] = {"conv2": (64,), "conv4": (64, 128), "conv6": (64, 128, 256)}


class ConvNet(nn.Sequential):
    """``features`` (conv blocks) then ``classifier`` (flatten + three linear layers)."""

    def __init__(
        self, name: str, input_shape: tuple[int, ...], num_classes: int, plan: tuple[int, ...], width: float
    ) -> None:
        c, h, w = input_shape
        pools = len(plan)
        if min(h, w) < 2**pools:
            raise ConfigError(
                f"{name} cannot take input shape {input_shape}: its {pools} 2x2 poolings need images of at "
                f"least {2**pools}x{2**pools}, such as (1, 28, 28), (3, 32, 32) or (1, 8, 8)"
            )
        feats: OrderedDict[str, nn.Module] = OrderedDict()
        prev = c
        for b, channels in enumerate(plan, start=1):
            out = scaled(channels, width)
            for i in (1, 2):
                feats[f"conv{b}_{i}"] = nn.Conv2d(prev, out, 3, padding=1)
                feats[f"relu{b}_{i}"] = nn.ReLU()
                prev = out
            feats[f"pool{b}"] = nn.MaxPool2d(2)
            h, w = h // 2, w // 2
        hidden = scaled(256, width)
        classifier = nn.Sequential(
            OrderedDict(
                flatten=nn.Flatten(),
                fc1=nn.Linear(prev * h * w, hidden),
                relu1=nn.ReLU(),
                fc2=nn.Linear(hidden, hidden),
                relu2=nn.ReLU(),
                fc3=nn.Linear(hidden, num_classes),
            )
        )
        super().__init__(OrderedDict(features=nn.Sequential(feats), classifier=classifier))


def _make(name: str) -> None:
    plan = _PLANS[name]
    desc = (
        f"Conv-{name[4:]} (Frankle & Carbin 2019): {len(plan)} block(s) of two 3x3 convs + max-pool "
        f"({'-'.join(str(p) for p in plan)} channels), then FC 256-256"
    )

    @register_model(name, inputs=("image",), description=desc)
    def build(
        input_shape: tuple[int, ...], num_classes: int, *, width: float = 1.0, init: str = "kaiming_normal"
    ) -> nn.Module:
        check_width(name, width)
        return init_weights(ConvNet(name, input_shape, num_classes, plan, width), init)


for _name in _PLANS:
    _make(_name)
