"""Pruning-at-initialisation methods, one module each, discovered automatically.

Every method module in this package registers its method(s) with ``@register``; importing the
package (which any ``autosparse.pruners.*`` import does first) imports every module in it, so
adding a method is adding a file. The shared machinery (registry, entry, iterate, workspace,
weights, gradients, inputs, scores, sanity, npb_program) is imported too and registers nothing.
The learned method ``autos`` lives with the scorer it applies (:mod:`autosparse.scorer.autos`)
and is registered through the ``autosparse.methods`` entry point when the registry first lists
its methods or meets a name it does not know (and by importing :mod:`autosparse.api`, for an
uninstalled checkout).
"""

from __future__ import annotations

import importlib
import pkgutil

from autosparse.data.pruning_data import PruningData
from autosparse.pruners.entry import PruneResult, prune, prune_timed
from autosparse.pruners.iterate import iterate, schedule_densities
from autosparse.pruners.registry import (
    Pruner,
    PrunerConfig,
    ScoringPruner,
    as_scoring,
    available,
    get_pruner,
    make_pruner,
    make_scoring_pruner,
    register,
    scoring_methods,
)
from autosparse.pruners.scores import Scores

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = [
    "PruneResult",
    "Pruner",
    "PrunerConfig",
    "PruningData",
    "Scores",
    "ScoringPruner",
    "as_scoring",
    "available",
    "get_pruner",
    "iterate",
    "make_pruner",
    "make_scoring_pruner",
    "prune",
    "prune_timed",
    "register",
    "schedule_densities",
    "scoring_methods",
]
