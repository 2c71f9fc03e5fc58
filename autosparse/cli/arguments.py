"""Arguments shared by several subcommands (the task's model and data, config files)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from autosparse.core.config import add_dataclass_arguments, from_dict, given, load_yaml, merge
from autosparse.core.errors import ConfigError
from autosparse.task import DataSpec, ModelSpec, Task

#: fields of the task that are not flags of a single run: ``name`` only labels runs of a grid
TASK_EXCLUDE = ("name",)


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="YAML file of the same fields; flags override it")


def resolve(args: argparse.Namespace, *classes: type, exclude: tuple[str, ...] = ()) -> list[Any]:
    """Build each dataclass from defaults < YAML (``--config``) < flags.

    One flat YAML mapping serves several dataclasses: each key goes to the class that has it,
    and a key no class has (or one in ``exclude``) is an error listing the valid keys.
    """
    yaml_data = load_yaml(args.config) if getattr(args, "config", None) else {}
    yaml_data = {str(k).replace("-", "_"): v for k, v in yaml_data.items()}
    owned = [{f.name for f in dataclasses.fields(c)} - set(exclude) for c in classes]
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


def add_task_arguments(parser: argparse.ArgumentParser, *classes: type) -> None:
    """``--model``, ``--model-kwargs``, ``--dataset``, ``--n-train`` … and then the fields of ``classes``."""
    add_arguments(parser, ModelSpec, DataSpec, *classes, exclude=TASK_EXCLUDE)


def resolve_task(args: argparse.Namespace, *classes: type) -> tuple[Task, list[Any]]:
    """The task given by flags and ``--config``, and the other dataclasses built like :func:`resolve`."""
    model, data, *rest = resolve(args, ModelSpec, DataSpec, *classes, exclude=TASK_EXCLUDE)
    return Task(model, data), rest
