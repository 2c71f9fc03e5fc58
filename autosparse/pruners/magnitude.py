"""Magnitude pruning at initialisation: keep the largest |θ|.

Needs no data and no gradient. At initialisation it mostly reflects each layer's init scale
(a layer with a smaller std loses more weights under a global ranking), which is why it
collapses wide first layers at high sparsity; it is the criterion IMP applies *after*
training, and the natural control for every gradient-based score.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from autosparse.core.layers import prunable_layers
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores, to_scores
from autosparse.pruners.weights import effective_weight


@dataclass
class MagnitudeConfig(PrunerConfig):
    """Synaptic-Flow's ``Mag`` pruner masks globally (``--mask-scope global``)."""

    scope: str = "global"


@register("magnitude")
class MagnitudePruner(ScoringPruner):
    Config = MagnitudeConfig
    data_dependent = False
    description = "largest absolute weight at initialisation"

    def scores(self, model: nn.Module, data: PruningData | None = None, *, seed: int = 0) -> Scores:
        layers = prunable_layers(model)
        return to_scores([la.name for la in layers], [effective_weight(la).abs() for la in layers])
