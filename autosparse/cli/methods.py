"""``autosparse methods|models|datasets``: what the registries hold."""

from __future__ import annotations

import argparse
import dataclasses


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("methods", help="list pruning methods and their hyperparameters")
    p.set_defaults(func=_methods)
    p = sub.add_parser("models", help="list models in the zoo")
    p.set_defaults(func=_models)
    p = sub.add_parser("datasets", help="list datasets")
    p.set_defaults(func=_datasets)


def _methods(args: argparse.Namespace) -> int:
    from autosparse.pruners import available, get_pruner

    for name in available():
        cls = get_pruner(name)
        data = "data" if cls.data_dependent else "data-free"
        print(f"{name:12s} [{data}] {cls.description}")
        for f in dataclasses.fields(cls.Config):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            print(f"    {f.name} = {default!r}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from autosparse.models import available_models, model_info

    for name in available_models():
        print(f"{name:16s} {model_info(name)}")
    print("tv:<name>        any torchvision classification model, e.g. tv:resnet18")
    print(
        "timm:<name>      any timm model, e.g. timm:convnext_atto (optional extra: pip install 'autosparse[timm]'); "
        'list them with: python -c "import timm; print(timm.list_models())"'
    )
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from autosparse.data import available_datasets, dataset_info

    for name in available_datasets():
        print(f"{name:16s} {dataset_info(name)}")
    return 0
