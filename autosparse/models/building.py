"""Helpers shared by the zoo's families: weight initialisation, width scaling, shape checks."""

from __future__ import annotations

import math

from torch import nn

from autosparse.core.errors import ConfigError, UnknownNameError

#: ``kaiming_normal``: He-normal weights (fan-in, ReLU gain) on every Linear/Conv, zero biases,
#: BatchNorm gamma=1, beta=0 -- Synaptic-Flow's initialisation of its lottery-ticket models, which the
#: reference numbers in the design notes were measured with (open_lth's defaults to gamma ~ U[0, 1],
#: its ``batchnorm_init='uniform'``; its conv and linear weights are He-normal too). ``torch``:
#: PyTorch's own defaults (Kaiming-uniform with a=sqrt(5)), for comparison with code that uses them.
INITS = ("kaiming_normal", "torch")


def init_weights(model: nn.Module, init: str) -> nn.Module:
    """Re-initialise ``model``'s Linear/Conv/BatchNorm layers in place with scheme ``init``."""
    if init not in INITS:
        raise UnknownNameError("init scheme", init, INITS)
    if init == "torch":
        return model
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1, so tiny multipliers still give a valid layer."""
    return max(1, int(round(channels * width)))


def check_width(model: str, width: float) -> None:
    if not (isinstance(width, (int, float)) and not isinstance(width, bool) and 0 < width < math.inf):
        raise ConfigError(f"{model} option width={width!r} must be a finite number > 0 (1.0 is the published size)")


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Spatial size after a convolution or pooling (floor mode, as PyTorch computes it)."""
    return (size + 2 * padding - kernel) // stride + 1
