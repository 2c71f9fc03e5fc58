"""Arguments shared by several subcommands (model, dataset, config files)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from autosparse.core.config import add_dataclass_arguments, from_dict, given, load_yaml, merge
from autosparse.core.errors import ConfigError


@dataclass
class ModelData:
    """Which model on which data; shared by train, prune, bench cells and IRP runs."""

    model: str = "lenet_300_100"
    dataset: str = "fashion-mnist"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    download: bool = False
    n_train: int | None = None
    n_test: int | None = None
    data_seed: int = 0

    def load_dataset(self):  # -> autosparse.data.Dataset
        from autosparse.data import load_dataset

        return load_dataset(
            self.dataset,
            self.data_root,
            download=self.download,
            n_train=self.n_train,
            n_test=self.n_test,
            seed=self.data_seed,
        )

    def build_model(self, dataset: Any, seed: int):
        from autosparse.models import build_model

        return build_model(self.model, tuple(dataset.input_shape), dataset.num_classes, seed=seed, **self.model_kwargs)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="YAML file of the same fields; flags override it")


def resolve(args: argparse.Namespace, *classes: type) -> list[Any]:
    """Build each dataclass from defaults < YAML (``--config``) < flags.

    One flat YAML mapping serves several dataclasses: each key goes to the class that has it,
    and a key no class has is an error listing the valid keys.
    """
    yaml_data = load_yaml(args.config) if getattr(args, "config", None) else {}
    yaml_data = {str(k).replace("-", "_"): v for k, v in yaml_data.items()}
    owned = [{f.name for f in dataclasses.fields(c)} for c in classes]
    unknown = sorted(set(yaml_data) - set().union(*owned))
    if unknown:
        valid = sorted(set().union(*owned))
        raise ConfigError(f"unknown keys {', '.join(unknown)} in {args.config}; valid keys: {', '.join(valid)}")
    out = []
    for cls, names in zip(classes, owned, strict=True):
        section = {k: v for k, v in yaml_data.items() if k in names}
        out.append(from_dict(cls, merge(section, given(args, cls))))
    return out


def add_arguments(parser: argparse.ArgumentParser, *classes: type, exclude: tuple[str, ...] = ()) -> None:
    seen: set[str] = set()
    for cls in classes:
        names = [f.name for f in dataclasses.fields(cls)]
        add_dataclass_arguments(parser, cls, exclude=tuple(seen | set(exclude)))
        seen.update(names)
