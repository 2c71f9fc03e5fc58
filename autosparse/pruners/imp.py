"""``imp``: iterative magnitude pruning with rewinding (the lottery-ticket procedure).

Not a pruning-*at-initialisation* method — it trains the network once per round — but the
reference every PaI method is measured against and the procedure whose labels ``autos`` learns
from. It needs the training set, so its config names the dataset; the pruning batch is unused.
The schedule is geometric: the fewest rounds that remove at most ``prune_fraction`` of the
remaining weights each, landing exactly on the requested density in the last round.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn

from autosparse.core.errors import ConfigError, MaskError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks, carries_masks
from autosparse.data.pruning_data import PruningData, pruning_batch
from autosparse.pruners.registry import Pruner, PrunerConfig, register
from autosparse.task import DataSpec
from autosparse.training.irp import IRPConfig, run_irp
from autosparse.training.trainer import TrainConfig

log = logging.getLogger(__name__)

#: the pruners' scopes imp can follow, as IRP's: within each layer, every layer loses the same share
_SCOPES = {"global": "global", "uniform": "layerwise"}


@dataclass
class ImpConfig(PrunerConfig):
    dataset: str = ""  # required: the training set IMP trains on each round
    data_root: str | None = None  # where the dataset's files are (default: the dataset's usual place)
    n_train: int | None = None  # a stratified subset of this many training examples (default: all)
    n_test: int | None = None  # test examples each round's accuracy is measured on, a stratified subset (default: all)
    prune_fraction: float = 0.5  # of the survivors per round (the lottery-ticket pace is 0.2: the bench's imp_lth)
    scope: str = "global"  # what each round ranks across: global (the whole net) | uniform (each layer, the same share)
    rewind_step: int = 0  # 0 rewinds survivors to θ0; k > 0 to the weights after k steps of dense training
    epochs: float = 8  # training per round
    lr: float = 0.1  # peak learning rate of each round's training
    batch_size: int = 128  # training batch size
    criterion: str = "magnitude"  # what each round prunes by: magnitude | snip | flow (SynFlow on the trained net)

    def __post_init__(self) -> None:
        if not 0 < self.prune_fraction < 1:  # 0 and 1 failed in the rounds' log, -0.5 trained (helper)
            raise ConfigError(f"imp prune_fraction must be in (0, 1), e.g. 0.2 a round, got {self.prune_fraction}")
        if not isinstance(self.dataset, str):  # a loaded Dataset gave an AttributeError from the registry (helper)
            raise ConfigError(
                f"imp's dataset is a registered dataset's name (`autosparse datasets` lists them), got a "
                f"{type(self.dataset).__name__}; to run IMP on data of your own, use autosparse.training.irp.run_irp"
            )
        if self.scope not in _SCOPES:  # every round prunes within its scope; ERK is a one-shot allocation
            raise ConfigError(
                f"imp prunes each round globally or by the same share in every layer: scope global or uniform, "
                f"got {self.scope!r}"
            )
        if self.criterion == "flow" and self.scope != "global":  # IRP refused it only after the data loaded (review)
            raise ConfigError("imp's flow criterion ranks the whole network's path flow: use it with scope global")

    def train_data(self, seed: int) -> DataSpec:
        """The training set IMP trains on; its subset follows the pruning seed, as a source run's does."""
        return DataSpec(
            self.dataset, n_train=self.n_train, n_test=self.n_test, data_root=self.data_root, data_seed=seed
        )


@register("imp")
class ImpPruner(Pruner):
    Config = ImpConfig
    data_dependent = False
    description = (
        "iterative magnitude pruning with rewinding (lottery ticket); trains every round — the upper reference"
    )

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: ImpConfig = self.config  # type: ignore[assignment]
        if not cfg.dataset:
            raise ConfigError(
                "imp trains the network: give its dataset, e.g. prune(model, 'imp', dataset='fashion-mnist')"
            )
        if carries_masks(model):  # round 0 trained under the old hooks, then round 1 failed on them (hunt)
            raise MaskError(
                "imp trains the model, and it carries torch pruning masks from an earlier pruning, which would "
                "train with it; call autosparse.remove_masks(model) first (the old zeros become part of θ0) or "
                "prune a model without masks"
            )
        if cfg.rewind_step > 0:  # the bench's imp rows train from θ_k themselves; these masks cannot carry it
            log.warning(
                "imp with rewind_step=%d: its rounds rewind to the weights after %d steps, but the masks carry "
                "no weights, so training them from this model's θ0 is not late-rewinding IMP; the bench's imp "
                "row (hparams: rewind_step) measures the tickets from θ_k",
                cfg.rewind_step,
                cfg.rewind_step,
            )
        if density >= 1.0:
            return Masks(
                {layer.name: torch.ones_like(layer.parameter, dtype=torch.bool) for layer in prunable_layers(model)}
            )
        rounds = max(1, math.ceil(math.log(density) / math.log(1.0 - cfg.prune_fraction) - 1e-9))
        targets = tuple(density ** ((r + 1) / rounds) for r in range(rounds))
        dataset = cfg.train_data(seed).load()
        irp = IRPConfig(
            criterion=cfg.criterion,  # type: ignore[arg-type]
            scope=_SCOPES[cfg.scope],  # type: ignore[arg-type]  (scope was silently global, helper)
            rewind_step=cfg.rewind_step,
            target_densities=targets,
        )
        train_cfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=seed)
        batch = None
        if irp.criterion == "snip":  # scored on a batch: the one given, else one of the training set (as the bench)
            batch = data.batches[0] if data is not None else pruning_batch(dataset, seed=seed).batches[0]
        # the last round would train the final mask only to measure it: the caller trains it
        result = run_irp(model, dataset, irp, train_cfg, seed=seed, criterion_batch=batch, train_last=False)
        # the last round's mask: weights that survived every pruning step
        return Masks({n: lab >= irp.rounds for n, lab in result.labels.items()})
