"""A dataset as five in-memory tensors, and what is known about one without loading it.

Every dataset autosparse trains on is small enough to live in memory, so a dataset here is five
tensors, already converted and normalised once at load time: training then slices tensors instead
of running per-sample Python transforms, which is what dominates small-model training time on CPU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from autosparse.core.errors import ConfigError, check_class_count
from autosparse.data.sampling import subset_index

ArrayLike = np.ndarray | torch.Tensor
RawSplits = tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike]  # x_train, y_train, x_test, y_test
Loader = Callable[[Path | None, bool], RawSplits]


def are_class_indices(y: torch.Tensor) -> bool:
    """Whether targets are integer class indices (what cross-entropy reads), not floats or booleans."""
    return not (y.is_floating_point() or y.dtype == torch.bool)


@dataclass(repr=False)
class Dataset:
    """A classification dataset held as tensors.

    ``x`` is float32 of shape ``(N, *input_shape)``, normalised per channel with the *full*
    training set's mean and std (kept in ``mean``/``std``), so a subset is preprocessed exactly
    like the whole dataset; ``y`` is int64 class indices in ``[0, num_classes)``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.input_shape, bool):
            raise ConfigError(
                f"{self.name}: input_shape must be a shape such as (1, 28, 28) or 64, got {self.input_shape!r}"
            )
        if isinstance(self.input_shape, numbers.Integral):  # a flat input given as 64, as prune's input_shape takes it
            self.input_shape = (int(self.input_shape),)
        # one int, whatever gave it (y.max() + 1 is a tensor): pruning_batch refused a tensor count (review)
        self.num_classes = check_class_count(self.num_classes, f"{self.name}: ")
        self.input_shape = tuple(int(s) for s in self.input_shape)
        for field_name in ("x_train", "y_train", "x_test", "y_test"):
            if not isinstance(getattr(self, field_name), torch.Tensor):  # numpy failed on .is_floating_point (helper)
                raise ConfigError(
                    f"{self.name}: {field_name} is a {type(getattr(self, field_name)).__name__}; give tensors, e.g. "
                    "torch.as_tensor(x, dtype=torch.float32) and torch.as_tensor(y).long()"
                )
        for split, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            if x.shape[0] == 0:  # training on none looped forever (review); a test split of none scored 0.0
                raise ConfigError(f"{self.name}: x_{split} holds no examples; give each split at least one")
            if x.dtype == torch.uint8:
                raise ConfigError(
                    f"{self.name}: x_{split} is uint8 (raw pixels); give float inputs, e.g. x.float() / 255, "
                    "then normalise them"
                )
            if x.is_floating_point() and not bool(torch.isfinite(x.sum())) and not bool(torch.isfinite(x).all()):
                # a NaN input made training "diverge", and the warning said to lower the lr (review)
                raise ConfigError(f"{self.name}: x_{split} holds NaN or infinite values; clean or impute them first")
            if tuple(x.shape[1:]) != self.input_shape:
                raise ConfigError(
                    f"{self.name}: x_{split} has shape {tuple(x.shape)}, expected (N, *{self.input_shape})"
                )
            if y.dim() != 1 or y.shape[0] != x.shape[0]:
                raise ConfigError(f"{self.name}: y_{split} has shape {tuple(y.shape)} for {x.shape[0]} inputs")
            if not are_class_indices(y):
                raise ConfigError(f"{self.name}: y_{split} must hold integer class indices, not {y.dtype} (y.long())")
            if y.dtype != torch.int64:  # int32 labels crashed inside cross-entropy (review)
                y = y.long()
                setattr(self, f"y_{split}", y)
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise ConfigError(
                    f"{self.name}: y_{split} holds classes {int(y.min())}..{int(y.max())}, outside "
                    f"[0, {self.num_classes}) for num_classes={self.num_classes}"
                )

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    def __repr__(self) -> str:  # the dataclass default would print every tensor
        return (
            f"Dataset({self.name!r}, train={self.n_train}, test={self.n_test}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> Dataset:
        """A stratified, seeded subset (``None`` keeps a split whole).

        Train and test draw from independent streams of the same seed, so changing ``n_train``
        never changes which test examples are chosen.
        """
        tr = subset_index(self.y_train, n_train, self.num_classes, seed, 0, f"{self.name} train")
        te = subset_index(self.y_test, n_test, self.num_classes, seed, 1, f"{self.name} test")
        return Dataset(
            name=self.name,
            x_train=self.x_train if tr is None else self.x_train[tr],
            y_train=self.y_train if tr is None else self.y_train[tr],
            x_test=self.x_test if te is None else self.x_test[te],
            y_test=self.y_test if te is None else self.y_test[te],
            num_classes=self.num_classes,
            input_shape=self.input_shape,
            mean=self.mean,
            std=self.std,
            description=self.description,
        )

    def to(self, device: torch.device | str) -> Dataset:
        """Move every tensor once (e.g. to the GPU) so batches are slices, not host-to-device copies."""
        return Dataset(
            self.name,
            self.x_train.to(device),
            self.y_train.to(device),
            self.x_test.to(device),
            self.y_test.to(device),
            self.num_classes,
            self.input_shape,
            self.mean,
            self.std,
            self.description,
        )

    def train_loader(
        self, batch_size: int, shuffle: bool = True, seed: int = 0, *, drop_last: bool = False
    ) -> TensorBatches:
        return TensorBatches(self.x_train, self.y_train, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last)

    def test_loader(self, batch_size: int = 1024) -> TensorBatches:
        return TensorBatches(self.x_test, self.y_test, batch_size, shuffle=False)


class TensorBatches:
    """A DataLoader replacement over in-memory tensors: one index permutation per epoch, no workers.

    The generator is created once, so successive epochs get different (but reproducible) orders.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ConfigError(f"batch_size must be positive, got {batch_size}")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), shuffle, drop_last
        self._gen = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        n = int(self.x.shape[0])
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = int(self.x.shape[0])
        order = torch.randperm(n, generator=self._gen).to(self.x.device) if self.shuffle else None
        for b in range(len(self)):
            sl = slice(b * self.batch_size, min((b + 1) * self.batch_size, n))
            if order is None:
                yield self.x[sl], self.y[sl]
            else:
                idx = order[sl]
                yield self.x[idx], self.y[idx]


@dataclass(frozen=True)
class DatasetInfo:
    """What is known about a dataset without loading it (shapes for building a model, nominal sizes)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    description: str
    n_train: int | None = None
    n_test: int | None = None
    aliases: tuple[str, ...] = field(default=())
