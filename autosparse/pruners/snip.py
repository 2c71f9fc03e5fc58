"""SNIP (Lee et al., ICLR 2019): connection sensitivity |θ ⊙ ∂L/∂θ| at initialisation.

The score is the first-order change of the loss when a weight is removed, so it keeps the
weights the loss is most sensitive to *now*; at high sparsity this tends to strip whole
layers because it ignores how removing one weight changes the gradients of the others
(what GraSP, iterative SNIP/FORCE and SynFlow address).

Following Synaptic-Flow's ``SNIP`` (itself after mi-lad/snip): the gradient is accumulated
over all pruning batches (one backward of the batch-mean cross-entropy per batch, summed;
each weighted by its size over the mean size, 1 for equal batches, so a short last batch does
not count as a full one),
the model is in eval mode unless ``train_mode`` is set, and scores are divided by their
global sum (ranking-neutral; it makes values comparable across networks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from autosparse.core.model_io import model_device
from autosparse.core.seeding import seeded
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.gradients import Reduction, loss_gradients
from autosparse.pruners.inputs import require_data
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores, normalize_by_sum, to_scores
from autosparse.pruners.weights import named_prunable
from autosparse.pruners.workspace import working_copy


def snip_scores(
    model: nn.Module,
    data: PruningData,
    *,
    train_mode: bool = False,
    normalize: bool = True,
    reduction: Reduction = "sum",
    seed: int = 0,
    copy: bool = True,
) -> Scores:
    """|θ ⊙ g| with g the pruning-loss gradient; computed on a copy, so ``model`` is untouched.

    Shared by :class:`SnipPruner` and iterative SNIP, which calls it once per round on the
    thinned network (pruned weights are zero there, so their score is exactly zero) with
    ``copy=False``: that network is already a private copy, and copying it every round cost
    more than the round's gradient on a large model.
    """
    work = working_copy(model, train_mode=train_mode) if copy else model.train(train_mode)
    names, params = named_prunable(work)
    with seeded(seed, model_device(work)):
        grads = loss_gradients(work, data, params, reduction=reduction)
    scores = to_scores(names, [torch.abs(p.detach() * g) for p, g in zip(params, grads)])
    return normalize_by_sum(scores) if normalize else scores


@dataclass
class SnipConfig(PrunerConfig):
    """Defaults of Synaptic-Flow (Tanaka et al. 2020, ``main.py`` / ``prune.py``)."""

    scope: str = "global"  # global (one top-k over all layers, the paper's) | uniform | erk: per-layer counts
    train_mode: bool = False  # --prune-train-mode False: BatchNorm uses running stats
    normalize: bool = True  # SNIP.score divides by the global sum


@register("snip")
class SnipPruner(ScoringPruner):
    Config = SnipConfig
    data_dependent = True
    description = "connection sensitivity |θ·∂L/∂θ| on a data batch (Lee et al. 2019)"

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        cfg: SnipConfig = self.config  # type: ignore[assignment]
        return snip_scores(
            model, require_data(data, self.name), train_mode=cfg.train_mode, normalize=cfg.normalize, seed=seed
        )
