"""Pruning-at-initialisation methods, one module each, discovered automatically.

Every module in this package registers its method(s) with ``@register``; importing the package
imports them all, so adding a method is adding a file.
"""

from __future__ import annotations

import importlib
import pkgutil

from autosparse.pruners.base import (
    Pruner,
    PrunerConfig,
    PruneResult,
    PruningData,
    Scores,
    available,
    get_pruner,
    make_pruner,
    prune,
    prune_timed,
    register,
)
from autosparse.pruners.iterate import iterate, schedule_densities

_INFRA = {"base", "iterate", "common"}
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
