"""Pruning-at-initialisation methods, one module each, discovered automatically.

Every module in this package registers its method(s) with ``@register``; importing the package
(which any ``autosparse.pruners.*`` import does first) imports them all, so adding a method is
adding a file. The learned method ``autos`` lives with the scorer it applies
(:mod:`autosparse.scorer.autos`) and is registered when :mod:`autosparse.api` is imported.
"""

from __future__ import annotations

import importlib
import pkgutil

from autosparse.data.pruning_data import PruningData
from autosparse.pruners.iterate import iterate, schedule_densities
from autosparse.pruners.registry import (
    Pruner,
    PrunerConfig,
    PruneResult,
    Scores,
    available,
    get_pruner,
    make_pruner,
    prune,
    prune_timed,
    register,
)

_INFRA = {"registry", "iterate", "common", "sanity"}  # not methods
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _INFRA and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "PruneResult",
    "Pruner",
    "PrunerConfig",
    "PruningData",
    "Scores",
    "available",
    "get_pruner",
    "iterate",
    "make_pruner",
    "prune",
    "prune_timed",
    "register",
    "schedule_densities",
]
