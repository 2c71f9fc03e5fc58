"""The data a data-dependent pruner sees: a short, fixed list of (inputs, targets) batches, and how it is drawn."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autosparse.core.errors import ConfigError
from autosparse.data.dataset import Dataset
from autosparse.data.sampling import seeded_rng

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class PruningData:
    """The data a data-dependent pruner sees: a short, fixed list of (inputs, targets) batches.

    Fixed (not a live loader) so that the same seed gives the same mask, and so that a feature
    computed at data-generation time and at prune time sees the same kind of batch.
    """

    batches: list[Batch]
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.batches[0][0].shape[1:])

    def __iter__(self) -> Iterator[Batch]:
        return iter(self.batches)

    def to(self, device: torch.device | str) -> PruningData:
        return PruningData([(x.to(device), y.to(device)) for x, y in self.batches], self.num_classes)

    @classmethod
    def coerce(cls, data: Any, num_classes: int | None = None) -> PruningData | None:
        """Accept a PruningData, one (x, y) batch, a list of batches or a DataLoader."""
        if data is None or isinstance(data, PruningData):
            return data
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
            batches = [data]
        elif isinstance(data, Iterable):
            batches = [(b[0], b[1]) for b in data]
        else:
            raise ConfigError(f"cannot use {type(data).__name__} as pruning data; pass (inputs, targets) tensors")
        if not batches:
            raise ConfigError("pruning data is empty; pass at least one (inputs, targets) batch")
        if num_classes is None:
            num_classes = int(max(int(y.max()) for _, y in batches)) + 1
        return cls(batches, num_classes)


def pruning_batch(
    dataset: Dataset, *, samples_per_class: int = 10, seed: int = 0, batch_size: int | None = None
) -> PruningData:
    """A fixed, class-balanced set of training examples for data-dependent pruners and features.

    ``samples_per_class`` examples of every class (GraSP's and SynFlow's recipe), chosen by
    ``seed`` and then shuffled so any split into batches of ``batch_size`` mixes classes. Fixed
    rather than a live loader so the same seed reproduces the same scores and the same features.
    """
    if samples_per_class <= 0:
        raise ConfigError(f"samples_per_class must be positive, got {samples_per_class}")
    if batch_size is not None and batch_size <= 0:
        raise ConfigError(f"batch_size must be positive, got {batch_size}")
    labels = dataset.y_train.cpu().numpy()
    rng = seeded_rng(seed, 2)
    picked = []
    for c in range(dataset.num_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < samples_per_class:
            log.warning(
                "%s has only %d training examples of class %d (asked for %d per class); using all of them",
                dataset.name,
                len(pool),
                c,
                samples_per_class,
            )
        picked.append(rng.choice(pool, size=min(samples_per_class, len(pool)), replace=False))
    idx = np.concatenate(picked)
    if idx.size == 0:
        raise ConfigError(f"{dataset.name} has no training examples to build a pruning batch from")
    idx = idx[rng.permutation(idx.size)]
    index = torch.from_numpy(idx.astype(np.int64)).to(dataset.y_train.device)
    x, y = dataset.x_train[index], dataset.y_train[index]
    size = int(idx.size) if batch_size is None else int(batch_size)
    batches = [(x[i : i + size], y[i : i + size]) for i in range(0, int(idx.size), size)]
    return PruningData(batches, dataset.num_classes)
