"""Magnitude pruning at initialisation: keep the largest |θ|.

Needs no data and no gradient. At initialisation it mostly reflects each layer's init scale
(a layer with a smaller std loses more weights under a global ranking), which is why it
collapses wide first layers at high sparsity; it is the criterion IMP applies *after*
training, and the natural control for every gradient-based score.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autosparse.core.layers import PrunableLayer, prunable_layers
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.common import to_scores
from autosparse.pruners.registry import Pruner, PrunerConfig, Scores, register


@dataclass
class MagnitudeConfig(PrunerConfig):
    """Synaptic-Flow's ``Mag`` pruner masks globally (``--mask-scope global``)."""

    scope: str = "global"


@register("magnitude")
class MagnitudePruner(Pruner):
    Config = MagnitudeConfig
    data_dependent = False
    description = "largest absolute weight at initialisation"

    def scores(self, model: nn.Module, data: PruningData | None = None, *, seed: int = 0) -> Scores:
        layers = prunable_layers(model)
        return to_scores([la.name for la in layers], [_effective(la).abs() for la in layers])


def _effective(layer: PrunableLayer) -> torch.Tensor:
    """The weight the network computes with: ``weight_orig * weight_mask`` on a torch-pruned layer.

    Read from the trainable tensor and the mask rather than from the cached ``weight``
    attribute, which torch only refreshes on the next forward. A weight pruned earlier thus
    scores zero, as it does under every gradient-based score.
    """
    w = layer.parameter.detach()
    mask = getattr(layer.module, layer.param_name + "_mask", None)
    return w * mask.to(w.dtype) if mask is not None else w
