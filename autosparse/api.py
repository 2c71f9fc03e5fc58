"""The public pruning API, with every method registered: the classic ones and ``autos``.

Why a module of its own: ``autos`` applies the learned scorer, which sits above the pruners in
the layering (it needs features, the scorer and the topology), so the pruner registry cannot
import it. The registry finds it through the ``autosparse.methods`` entry point of an installed
autosparse; importing it here as well makes ``autosparse.prune(model, "autos")`` work from a
source checkout that was never installed.
"""

from __future__ import annotations

import autosparse.scorer.autos  # noqa: F401  (registers "autos")
from autosparse.pruners.registry import (
    Pruner,
    PrunerConfig,
    PruneResult,
    available,
    get_pruner,
    make_pruner,
    prune,
    prune_timed,
    register,
)

available_methods = available

__all__ = [
    "PruneResult",
    "Pruner",
    "PrunerConfig",
    "available",
    "available_methods",
    "get_pruner",
    "make_pruner",
    "prune",
    "prune_timed",
    "register",
]
