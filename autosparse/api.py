"""The public pruning API, with every method registered: the classic ones and ``autos``.

Why a module of its own: ``autos`` applies the learned scorer, which sits above the pruners in
the layering (it needs features, the scorer and the topology), so the pruner registry cannot
import it. The registry finds it through the ``autosparse.methods`` entry point of an installed
autosparse; importing it here as well makes ``autosparse.prune(model, "autos")`` work from a
source checkout that was never installed.
"""

from __future__ import annotations

import autosparse.scorer.autos  # noqa: F401  (registers "autos")
from autosparse.pruners.entry import PruneResult, prune, prune_timed
from autosparse.pruners.registry import (
    Pruner,
    PrunerConfig,
    ScoringPruner,
    available,
    get_pruner,
    make_pruner,
    make_scoring_pruner,
    register,
)

available_methods = available

__all__ = [
    "PruneResult",
    "Pruner",
    "PrunerConfig",
    "ScoringPruner",
    "available",
    "available_methods",
    "get_pruner",
    "make_pruner",
    "make_scoring_pruner",
    "prune",
    "prune_timed",
    "register",
]
