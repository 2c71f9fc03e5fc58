"""autosparse: learn to prune neural networks at initialisation from iterative pruning.

The public API is re-exported here lazily so ``import autosparse`` (and the CLI's start-up)
stays fast and does not import torch-geometric, zarr or Ray until they are used:

- pruning: ``prune``, ``prune_timed``, ``available_methods``, ``Masks``, ``allocate``, ``PruningData``,
  ``pruning_batch``; after training, ``remove_masks`` makes the pruning permanent and
  ``safe_deepcopy`` copies a model with masks attached (``copy.deepcopy`` refuses it after a forward);
- models and data: ``build_model``, ``available_models``, ``model_info``, ``load_dataset``,
  ``available_datasets``, ``Dataset`` (your own tensors, for ``train``);
- training: ``train``, ``evaluate``, ``TrainConfig``;
- diagnostics and topology: ``mask_diagnostics``, ``path_stats``, ``layer_collapse``, ``trace_graph``;
- the learned scorer's data: ``compute_features``, ``FeatureStore``, ``StoreReader``, ``validate_store``,
  ``load_scorer``;
- ``AutosparseError``: the base of every user error (its message names the fix);
- what those return, to annotate your own code: ``PruneResult``, ``TrainResult``, ``ModelInfo``,
  ``PathStats``, ``NetworkGraph``, ``FeatureTable``, ``ValidationReport``, ``Scorer``.

``help(autosparse.prune)`` and the README's "Prune your own model with a shipped scorer" show them in use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "prune": "autosparse.api",
    "prune_timed": "autosparse.api",
    "available_methods": "autosparse.api",
    "PruneResult": "autosparse.api",
    "PruningData": "autosparse.data",
    "Dataset": "autosparse.data",
    "Masks": "autosparse.core.masks",
    "remove_masks": "autosparse.core.masks",
    "safe_deepcopy": "autosparse.core.layers",
    "allocate": "autosparse.core.allocation",
    "build_model": "autosparse.models",
    "available_models": "autosparse.models",
    "model_info": "autosparse.models",
    "ModelInfo": "autosparse.models",
    "load_dataset": "autosparse.data",
    "available_datasets": "autosparse.data",
    "pruning_batch": "autosparse.data",
    "TrainConfig": "autosparse.training",
    "TrainResult": "autosparse.training",
    "train": "autosparse.training",
    "evaluate": "autosparse.training",
    "AutosparseError": "autosparse.core.errors",
    "FeatureStore": "autosparse.store",
    "StoreReader": "autosparse.store",
    "validate_store": "autosparse.store",
    "ValidationReport": "autosparse.store",
    "path_stats": "autosparse.topology.paths",
    "layer_collapse": "autosparse.topology.paths",
    "PathStats": "autosparse.topology.paths",
    "mask_diagnostics": "autosparse.topology.diagnostics",
    "compute_features": "autosparse.features",
    "FeatureTable": "autosparse.features",
    "load_scorer": "autosparse.scorer.loaded",
    "Scorer": "autosparse.scorer.loaded",
    "trace_graph": "autosparse.topology.graph",
    "NetworkGraph": "autosparse.topology.unit_graph",
}

if TYPE_CHECKING:
    # what type checkers read (py.typed): the lazy __getattr__ below made every name Any to them, so a
    # user's `autosparse.prune(model, "snip", density="0.1")` passed mypy and pyright (helper). Kept equal
    # to _EXPORTS by tests/test_package.py.
    from autosparse.api import PruneResult, available_methods, prune, prune_timed
    from autosparse.core.allocation import allocate
    from autosparse.core.errors import AutosparseError
    from autosparse.core.layers import safe_deepcopy
    from autosparse.core.masks import Masks, remove_masks
    from autosparse.data import Dataset, PruningData, available_datasets, load_dataset, pruning_batch
    from autosparse.features import FeatureTable, compute_features
    from autosparse.models import ModelInfo, available_models, build_model, model_info
    from autosparse.scorer.loaded import Scorer, load_scorer
    from autosparse.store import FeatureStore, StoreReader, ValidationReport, validate_store
    from autosparse.topology.diagnostics import mask_diagnostics
    from autosparse.topology.graph import trace_graph
    from autosparse.topology.paths import PathStats, layer_collapse, path_stats
    from autosparse.topology.unit_graph import NetworkGraph
    from autosparse.training import TrainConfig, TrainResult, evaluate, train


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'autosparse' has no attribute {name!r}")
    return getattr(importlib.import_module(target), name)


# a literal list: type checkers cannot read one computed from _EXPORTS (`from autosparse import *` failed there)
__all__ = [
    "AutosparseError",
    "Dataset",
    "FeatureStore",
    "FeatureTable",
    "Masks",
    "ModelInfo",
    "NetworkGraph",
    "PathStats",
    "PruneResult",
    "PruningData",
    "Scorer",
    "StoreReader",
    "TrainConfig",
    "TrainResult",
    "ValidationReport",
    "allocate",
    "available_datasets",
    "available_methods",
    "available_models",
    "build_model",
    "compute_features",
    "evaluate",
    "layer_collapse",
    "load_dataset",
    "load_scorer",
    "mask_diagnostics",
    "model_info",
    "path_stats",
    "prune",
    "prune_timed",
    "pruning_batch",
    "remove_masks",
    "safe_deepcopy",
    "trace_graph",
    "train",
    "validate_store",
]


def __dir__() -> list[str]:
    """The lazy exports too: ``dir(autosparse)`` and tab completion listed none of the API, and
    offered this module's own imports (``Any``, ``importlib``) beside it (helper)."""
    loaded = {n for n, v in globals().items() if getattr(v, "__name__", "").startswith("autosparse.")}  # submodules
    return sorted({n for n in globals() if n.startswith("__")} | set(__all__) | loaded)
