"""Iterative SNIP (de Jorge et al., ICLR 2021, "Progressive Skeletonization"): SNIP re-scored
on the thinned network over many rounds.

One-shot SNIP judges every weight against the dense network, so at high sparsity it removes
weights whose importance only appears once their neighbours are gone (and can empty layers).
Re-scoring after each small step lets the scores follow the network as it thins; weights pruned
in an earlier round stay pruned (that is what separates Iter SNIP from FORCE).

Defaults follow the FORCE reference code (naver/force): 60 steps on the exponential schedule
(the README's commands, ``--num_steps 60 --mode exp``), gradients averaged over the pruning
batches, and the network in train mode as FORCE prunes a freshly built model.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.inputs import require_data
from autosparse.pruners.iterate import check_schedule, iterate
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores
from autosparse.pruners.snip import snip_scores


@dataclass
class IterSnipConfig(PrunerConfig):
    """Defaults of naver/force (de Jorge et al. 2021): ``--num_steps 60 --mode exp``, global masks."""

    scope: str = "global"
    rounds: int = 60  # re-scoring rounds (FORCE's reference code: 60)
    schedule: str = "exp"  # how the density falls over the rounds: exp | linear
    train_mode: bool = True  # FORCE scores a freshly built (train-mode) network

    def __post_init__(self) -> None:
        check_schedule(self.rounds, self.schedule)


@register("iter_snip")
class IterSnipPruner(ScoringPruner):
    Config = IterSnipConfig
    data_dependent = True
    description = "SNIP re-scored over rounds on an exponential schedule (de Jorge et al. 2021)"

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        """First-round scores (plain SNIP in this config's mode); :meth:`masks` iterates."""
        cfg: IterSnipConfig = self.config  # type: ignore[assignment]
        return snip_scores(model, require_data(data, self.name), train_mode=cfg.train_mode, reduction="mean", seed=seed)

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: IterSnipConfig = self.config  # type: ignore[assignment]
        pdata = require_data(data, self.name)
        return iterate(
            lambda m, _masks: snip_scores(m, pdata, train_mode=cfg.train_mode, reduction="mean", seed=seed, copy=False),
            model,
            density,
            cfg.rounds,
            schedule=cfg.schedule,  # type: ignore[arg-type]
            scope=cfg.scope,  # type: ignore[arg-type]
            desc="iter_snip rounds",
        )
