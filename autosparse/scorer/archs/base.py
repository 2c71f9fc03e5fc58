"""What a ranker architecture has to say, so that one fit loop, one loader and ``autos`` serve them all.

Why an interface: the MLP and the GNN rankers are trained with the same within-layer loss,
early-stopped the same way and stored in the same checkpoint; they differ only in how a network's
weights are turned into scores (one row of features per weight, or message passing over the unit
graph first) and so in what they keep of each training run. Everything that differs is a method
here; the loop (:mod:`autosparse.scorer.fit`), the loader (:mod:`autosparse.scorer.loaded`) and
``train-scorer`` (:mod:`autosparse.scorer.training`) never ask which architecture they hold.

An architecture is a stateless strategy registered with
:func:`~autosparse.scorer.archs.registry.register_arch`; what it prepares for training lives in the
:class:`RankerData` it returns, not on the instance.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from autosparse.features import FeatureTable
from autosparse.scorer.archs.registry import arch_class
from autosparse.scorer.checkpoint import Card
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.data import RunSamples
from autosparse.store import StoreReader


@dataclass
class TrainingSplit:
    """What ``train-scorer`` has opened and loaded before the ranker is fitted; each arch takes its view.

    ``train_runs`` are subsampled per-layer groups (the allocator reads them too); ``val_runs`` are
    whole held-out runs; the readers let an arch load what the samples do not carry (the GNN's graphs).
    """

    train_reader: StoreReader
    val_reader: StoreReader | None
    train_runs: list[RunSamples]
    val_runs: list[RunSamples]


@dataclass
class RankerData:
    """One architecture's view of the training split, as the fit loop uses it.

    ``train`` is whatever the arch's :meth:`Arch.sample_batch` draws from (opaque to the loop);
    ``monitor`` holds what early stopping scores with :meth:`Arch.monitor_scores` — the held-out
    runs, or the training runs when nothing is held out — each with the ``densities`` of its IRP rounds.
    """

    train: Any
    monitor: Sequence[Any]


class Arch(ABC):
    """A ranker architecture: how to build, train, evaluate and apply one kind of ranker."""

    name: ClassVar[str] = ""  # set by register_arch

    def card_meta(self, cfg: ScorerConfig) -> dict[str, Any]:
        """What the card's ``ranker`` entry records beyond ``features`` and ``hidden`` (needed to rebuild it)."""
        return {}

    @abstractmethod
    def new_ranker(self, cfg: ScorerConfig) -> nn.Module:
        """An untrained ranker for ``cfg`` (called right after ``torch.manual_seed(cfg.seed)``)."""

    @abstractmethod
    def from_card(self, card: Card) -> nn.Module:
        """An untrained ranker of the shape a card describes; a card that cannot describe one is a CheckpointError."""

    @abstractmethod
    def training_data(self, ranker: nn.Module, split: TrainingSplit, cfg: ScorerConfig) -> RankerData:
        """Prepare what training samples from and set ``ranker``'s input normalisation from the training runs."""

    @abstractmethod
    def sample_batch(
        self, ranker: nn.Module, train: Any, cfg: ScorerConfig, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, labels), both (groups_per_step, group_size): groups of weights of one layer each,
        sampled with ``gen`` only (so a seed fixes the run); scores carry gradients to ``ranker``."""

    @abstractmethod
    def monitor_scores(self, ranker: nn.Module, item: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer, scores and IRP labels of the weights early stopping looks at in one ``monitor`` item."""

    @abstractmethod
    def score_run(self, ranker: nn.Module, reader: StoreReader | None, run: RunSamples) -> list[torch.Tensor]:
        """Scores of every weight of a held-out run (one flat tensor per layer) for the card's metrics."""

    @abstractmethod
    def score_layers(
        self, ranker: nn.Module, table: FeatureTable, model: nn.Module | None, input_shape: Sequence[int] | None
    ) -> dict[str, torch.Tensor]:
        """Prune time: within-layer scores (higher = keep) of every prunable weight, shaped like the weights."""


def get_arch(name: str) -> Arch:
    """The registered architecture ``name``; an unknown name is a ConfigError listing the known ones."""
    arch = arch_class(name)()
    if not isinstance(arch, Arch):
        raise TypeError(f"scorer arch {name!r} is registered with {type(arch).__name__}, which is not an Arch")
    return arch
