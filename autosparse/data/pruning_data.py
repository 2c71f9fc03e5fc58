"""The data a data-dependent pruner sees: a short, fixed list of (inputs, targets) batches, and how it is drawn."""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from autosparse.core.errors import ConfigError, check_class_count
from autosparse.data.dataset import Dataset, are_class_indices
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

    def __post_init__(self) -> None:
        """Checked as ``data=(x, y)`` is: one built by hand reached the pruners unchecked and failed there
        with "too many values to unpack", an IndexError or torch's dtype errors (review)."""
        if not isinstance(self.batches, list) and _is_batch(self.batches):
            raise ConfigError(
                "PruningData takes a list of (inputs, targets) batches: PruningData([(x, y)], num_classes)"
            )
        if not isinstance(self.batches, (list, tuple)) or not self.batches:
            raise ConfigError(f"PruningData needs a non-empty list of (inputs, targets) batches; {_FORM}")
        self.batches = [_batch(b, i) for i, b in enumerate(self.batches)]
        self.num_classes = check_class_count(self.num_classes, "PruningData's ")  # y.max() + 1 counts too
        if min(int(y.min()) for _, y in self.batches) < 0:
            raise ConfigError("the pruning data has a negative class index; targets are class indices 0..num_classes-1")
        top = max(int(y.max()) for _, y in self.batches)
        if top >= self.num_classes:
            raise ConfigError(
                f"the pruning data has class index {top}, past num_classes={self.num_classes}: pass the number of "
                "classes the model predicts"
            )

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
        if isinstance(data, Dataset):  # the error named the (x, y) form only, not the helper that draws one (helper)
            raise ConfigError(
                "pruning data is a whole Dataset; pass a class-balanced batch of it: data=autosparse.pruning_batch(dataset)"
            )
        if isinstance(data, Mapping):  # iterated by its keys, it was "item 0 is str" (helper)
            raise ConfigError(f"pruning data is a mapping ({', '.join(map(str, list(data)[:4]))}); {_FORM}")
        if isinstance(data, (tuple, list)) and len(data) == 2 and any(type(t).__module__ == "numpy" for t in data):
            raise ConfigError(
                "pruning data is a pair of numpy arrays; convert them to tensors: "
                "data=(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y).long())"
            )
        if (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and isinstance(data[0], (tuple, list, Mapping))
            and isinstance(data[1], torch.Tensor)
        ):
            raise ConfigError(_SEVERAL_INPUTS.format(kind=type(data[0]).__name__))
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
            batches = [_batch(data, 0)]  # one (inputs, targets) pair, as a tuple or a list (misshapen: said so)
        elif (
            isinstance(data, (tuple, list))
            and len(data) > 2
            and _is_batch(data[:2])
            and all(isinstance(t, torch.Tensor) for t in data)
        ):
            batches = [_batch(data, 0)]  # one (x, y, weights…) batch: its first two entries, as a DataLoader item's
        elif isinstance(data, Iterable) and not isinstance(data, torch.Tensor):
            batches = [_batch(b, i) for i, b in enumerate(data)]
        else:
            raise ConfigError(f"cannot use {type(data).__name__} as pruning data; {_FORM}")
        if not batches:
            raise ConfigError(f"pruning data is empty; {_FORM}")
        if num_classes is None:
            num_classes = int(max(int(y.max()) for _, y in batches)) + 1
        return cls(batches, num_classes)


_SEVERAL_INPUTS = (
    "the pruning data's inputs are a {kind}: autosparse runs the model on one input tensor. Wrap the model "
    "so that its forward takes one tensor (e.g. a module whose forward(x) returns model(x, other) with the "
    "other inputs fixed, or model(**{{'pixel_values': x}})), prune the wrapper, and pass data=(x, targets)"
)
_FORM = "pass data=(inputs, targets): a batch of inputs and a 1-D tensor of class indices, or a list of such pairs"


def _is_batch(data: Any) -> bool:
    """An (inputs, targets) pair: two tensors, targets one class index per input."""
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
        and data[1].dim() == 1
        and data[0].dim() >= 1
        and data[0].shape[0] == data[1].shape[0]
    )


def _batch(item: Any, i: int) -> Batch:
    """One batch of a list or a DataLoader: its first two entries, as DataLoaders of (x, y, index) give."""
    if isinstance(item, (tuple, list)) and any(type(t).__module__ == "numpy" for t in item[:2]):
        raise ConfigError(
            f"pruning data item {i} holds numpy arrays; convert them to tensors: "
            "(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y).long())"
        )
    if isinstance(item, (tuple, list)) and len(item) >= 2 and isinstance(item[0], (tuple, list, Mapping)):
        raise ConfigError(_SEVERAL_INPUTS.format(kind=type(item[0]).__name__))
    if isinstance(item, (tuple, list)) and len(item) >= 2 and _is_batch(item[:2]):
        if not are_class_indices(item[1]):
            raise ConfigError(
                f"pruning data item {i} has {item[1].dtype} targets; targets are integer class indices (y.long())"
            )
        if item[1].numel() == 0:
            raise ConfigError(f"pruning data item {i} holds no examples; {_FORM}")
        y = item[1] if item[1].dtype == torch.int64 else item[1].long()  # cross-entropy takes int64 (int32 crashed)
        # made under torch.inference_mode(), a tensor cannot be saved for a backward: an ordinary copy (made
        # outside that mode: a clone inside it is an inference tensor again, review)
        with torch.inference_mode(False):
            return tuple(t.clone() if t.is_inference() else t for t in (item[0], y))  # type: ignore[return-value]
    if isinstance(item, (tuple, list)) and len(item) >= 2 and all(isinstance(t, torch.Tensor) for t in item[:2]):
        shapes = f"{tuple(item[0].shape)} and {tuple(item[1].shape)}"
        raise ConfigError(f"pruning data item {i} has inputs and targets of shapes {shapes}; {_FORM}")
    what = f"a tensor of shape {tuple(item.shape)}" if isinstance(item, torch.Tensor) else type(item).__name__
    raise ConfigError(f"pruning data item {i} is {what}, not an (inputs, targets) pair; {_FORM}")


def pruning_batch(
    dataset: Dataset, *, samples_per_class: int = 10, seed: int = 0, batch_size: int | None = None
) -> PruningData:
    """A fixed, class-balanced set of training examples for data-dependent pruners and features.

    ``samples_per_class`` examples of every class (GraSP's and SynFlow's recipe), chosen by
    ``seed`` and then shuffled so any split into batches of ``batch_size`` mixes classes. Fixed
    rather than a live loader so the same seed reproduces the same scores and the same features.
    """
    if not all(hasattr(dataset, a) for a in ("y_train", "x_train", "num_classes")):  # a (x, y) pair, a name (helper)
        raise ConfigError(
            f"pruning_batch draws from an autosparse Dataset (autosparse.load_dataset(name)), not a "
            f"{type(dataset).__name__}; a batch of your own goes to prune(..., data=(inputs, targets)) as it is"
        )
    for name, value in (("samples_per_class", samples_per_class), ("batch_size", batch_size)):
        whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if value is not None and (not whole or value <= 0):  # 2.5 failed in numpy, or was cut to 2 (helper)
            raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
    labels = dataset.y_train.cpu().numpy()
    rng = seeded_rng(seed, 2)
    picked, short = [], []
    for c in range(dataset.num_classes):
        pool = np.flatnonzero(labels == c)
        if len(pool) < samples_per_class:
            short.append(f"{c} ({len(pool)})")
        picked.append(rng.choice(pool, size=min(samples_per_class, len(pool)), replace=False))
    if short:
        log.warning(
            "%s's %d training examples hold fewer than %d of class %s; the pruning batch uses all there are "
            "(a larger --n-train or a smaller --samples-per-class avoids it)",
            dataset.name,
            len(labels),
            samples_per_class,
            ", ".join(short),
        )
    idx = np.concatenate(picked)
    if idx.size == 0:
        raise ConfigError(f"{dataset.name} has no training examples to build a pruning batch from")
    idx = idx[rng.permutation(idx.size)]
    index = torch.from_numpy(idx.astype(np.int64)).to(dataset.y_train.device)
    x, y = dataset.x_train[index], dataset.y_train[index]
    size = int(idx.size) if batch_size is None else int(batch_size)
    batches = [(x[i : i + size], y[i : i + size]) for i in range(0, int(idx.size), size)]
    return PruningData(batches, dataset.num_classes)
