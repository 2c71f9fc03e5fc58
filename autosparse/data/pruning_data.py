"""The data a data-dependent pruner sees: a short, fixed list of (inputs, targets) batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from autosparse.core.errors import ConfigError

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
