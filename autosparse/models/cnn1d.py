"""A 1-D convolutional network for MNIST-1D (Greydanus 2020), after the dataset's own CNN baseline.

Three Conv1d layers (kernel 5 then 3, 3; stride 2; padding 1; 25 channels) with ReLU, then one
linear classifier on the flattened feature map: on a 40-sample signal the lengths go
40 -> 19 -> 10 -> 5, i.e. the baseline's 125 classifier inputs. It is the zoo's only Conv1d
model, which is what it is for: the learned scorer must see 1-D kernels as well as 2-D ones.

Only 1-D inputs are supported -- ``(C, L)``, or ``(L,)`` which is read as one channel. Images
are rejected rather than silently flattened into a long signal, which would give a network
whose receptive fields straddle image rows and mean nothing.

Weights are He-normal like the rest of the zoo (``init="kaiming_normal"``); the baseline used
PyTorch's default initialisation, which ``init="torch"`` restores.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.models.building import conv_out, init_weights
from autosparse.models.registry import register_model


@register_model("cnn1d", inputs=("signal",))
def cnn1d(
    input_shape: tuple[int, ...], num_classes: int, *, channels: int = 25, init: str = "kaiming_normal"
) -> nn.Module:
    """1-D CNN for MNIST-1D signals (1, 40): three strided Conv1d layers and a linear classifier."""
    if channels < 1:
        raise ConfigError(f"cnn1d option channels={channels} must be >= 1 (25 is the MNIST-1D baseline)")
    c, length = (1, input_shape[0]) if len(input_shape) == 1 else input_shape
    out_len = length
    for k in (5, 3, 3):
        out_len = conv_out(out_len, k, 2, 1)
    if out_len < 1:
        raise ConfigError(
            f"cnn1d cannot take input shape {input_shape}: its three stride-2 convolutions need signals of "
            "at least 3 samples, such as (1, 40)"
        )
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if len(input_shape) == 1:
        layers["unflatten"] = nn.Unflatten(1, (1, length))
    layers.update(
        conv1=nn.Conv1d(c, channels, 5, stride=2, padding=1),
        relu1=nn.ReLU(),
        conv2=nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        relu2=nn.ReLU(),
        conv3=nn.Conv1d(channels, channels, 3, stride=2, padding=1),
        relu3=nn.ReLU(),
        flatten=nn.Flatten(),
        fc=nn.Linear(channels * out_len, num_classes),
    )
    return init_weights(nn.Sequential(layers), init)
