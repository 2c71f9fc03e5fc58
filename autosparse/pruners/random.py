"""Random pruning: the baseline every saliency has to beat.

Scores are i.i.d. standard normal draws (Synaptic-Flow's ``Rand`` uses ``randn_like``), so the
mask is a uniformly random subset under whatever allocation the scope picks. ``random`` ranks
globally, which in expectation keeps the same fraction of every layer; ``random_erk`` keeps
the ERK per-layer densities (Evci et al. 2020), the stronger random baseline of the sparse
training literature, and picks uniformly within each layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autosparse.core.layers import prunable_layers
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores


@dataclass
class RandomConfig(PrunerConfig):
    """Synaptic-Flow's ``Rand`` pruner masks globally (``--mask-scope global``)."""

    scope: str = "global"


@register("random")
class RandomPruner(ScoringPruner):
    Config = RandomConfig
    data_dependent = False
    description = "uniformly random weights (global ranking of Gaussian noise)"

    def scores(self, model: nn.Module, data: PruningData | None = None, *, seed: int = 0) -> Scores:
        # A private generator (not the global RNG): the same seed gives the same mask whether
        # or not the caller went through prune(), and the caller's random stream is untouched.
        gen = torch.Generator().manual_seed(int(seed))
        return {
            layer.name: torch.randn(layer.shape, generator=gen, dtype=torch.float32) for layer in prunable_layers(model)
        }


@dataclass
class RandomErkConfig(PrunerConfig):
    """ERK layer densities as in RigL (Evci et al. 2020), random within each layer."""

    scope: str = "erk"


@register("random_erk")
class RandomErkPruner(RandomPruner):
    Config = RandomErkConfig
    description = "random weights with Erdős–Rényi-Kernel per-layer densities"
