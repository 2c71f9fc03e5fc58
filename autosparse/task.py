"""This model on this data: the one spec that every job loads its data and builds its model from.

Training, pruning, source runs, bench cells, the speed bench, the IMP pruner and the demo all
start the same way — load a (subset of a) dataset, then build a freshly initialised model shaped
for it — so that start lives here once, and a model built by ``autosparse train`` is the model a
bench cell or a store run builds from the same spec and seed.

A model spec is also a run's readable label (``mlp-widths500x150``), which is how stores and
bench results name what they hold and how ``--holdout`` filters select runs. The fields of these
dataclasses are config keys and CLI flags (``--model``, ``--dataset``, ``--n-train`` …), and
the configs that embed them hash them into store run ids and bench cell ids, so a field is never
renamed or reordered here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.data import Dataset, load_dataset
from autosparse.models import build_model


class DataShape(Protocol):
    """What building a model needs to know about its data: a loaded Dataset or a DatasetInfo."""

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def num_classes(self) -> int: ...


@dataclass
class ModelSpec:
    """Which model, with which options."""

    model: str = "lenet_300_100"  # a zoo model, tv:<name> or timm:<name> (see `autosparse models`)
    model_kwargs: dict[str, Any] = field(
        default_factory=dict
    )  # the model's options, e.g. {"widths": [500, 150]} for --model mlp
    name: str = ""  # short label for run ids; defaults to the model name plus its options

    def __post_init__(self) -> None:
        # the data fixes these; as options they reached build_model twice and failed with a TypeError
        fixed = sorted(set(self.model_kwargs) & {"input_shape", "num_classes", "seed"})
        if fixed:
            one = len(fixed) == 1
            raise ConfigError(
                f"{', '.join(fixed)} {'is not a model option' if one else 'are not model options'} of {self.model}: "
                "the input shape and the class count come from the dataset and the seed from the run; "
                f"drop {'it' if one else 'them'} from the model options (--model-kwargs / model_kwargs)"
            )

    def label(self) -> str:
        if self.name:
            return self.name
        if not self.model_kwargs:
            return self.model
        opts = "_".join(
            f"{k}{'x'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
            for k, v in sorted(self.model_kwargs.items())
        )
        return f"{self.model}-{opts}"

    def build(self, data: DataShape, seed: int | None) -> nn.Module:
        """A freshly initialised model for ``data``'s inputs and classes; its weights depend only on ``seed``."""
        return build_model(self.model, tuple(data.input_shape), data.num_classes, seed=seed, **self.model_kwargs)


@dataclass(frozen=True)
class DataSpec:
    """Which data, and which subset of it.

    ``n_train``/``n_test`` take a stratified subset chosen by ``data_seed``; a job whose subset
    follows its run seed (a store run, the IMP pruner) passes that seed as ``data_seed``. Frozen,
    so a worker can cache the loaded dataset by its spec.
    """

    dataset: str = "fashion-mnist"  # a registered dataset or fake:<name> (list them with `autosparse datasets`)
    n_train: int | None = None  # training examples, a stratified subset chosen by data_seed (none: all)
    n_test: int | None = None  # test examples, a stratified subset chosen by data_seed (none: all)
    data_root: str | None = None  # where datasets are read from (none: a system copy, then the default folder)
    data_seed: int = 0  # which subset n_train/n_test take
    download: bool = False  # download a missing torchvision dataset instead of failing

    def load(self) -> Dataset:
        return load_dataset(
            self.dataset,
            self.data_root,
            download=self.download,
            n_train=self.n_train,
            n_test=self.n_test,
            seed=self.data_seed,
        )


@dataclass
class Task:
    """This model on this data."""

    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)

    def load_data(self) -> Dataset:
        return self.data.load()

    def build_model(self, dataset: DataShape, seed: int | None) -> nn.Module:
        return self.model.build(dataset, seed)


__all__ = ["DataShape", "DataSpec", "ModelSpec", "Task"]
