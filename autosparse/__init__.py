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
- ``AutosparseError``: the base of every user error (its message names the fix).

``help(autosparse.prune)`` and the README's "Prune your own model with a shipped scorer" show them in use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "prune": "autosparse.api",
    "prune_timed": "autosparse.api",
    "available_methods": "autosparse.api",
    "PruningData": "autosparse.data",
    "Dataset": "autosparse.data",
    "Masks": "autosparse.core.masks",
    "remove_masks": "autosparse.core.masks",
    "safe_deepcopy": "autosparse.core.layers",
    "allocate": "autosparse.core.allocation",
    "build_model": "autosparse.models",
    "available_models": "autosparse.models",
    "load_dataset": "autosparse.data",
    "available_datasets": "autosparse.data",
    "pruning_batch": "autosparse.data",
    "TrainConfig": "autosparse.training",
    "train": "autosparse.training",
    "evaluate": "autosparse.training",
    "AutosparseError": "autosparse.core.errors",
    "model_info": "autosparse.models",
    "FeatureStore": "autosparse.store",
    "StoreReader": "autosparse.store",
    "validate_store": "autosparse.store",
    "path_stats": "autosparse.topology.paths",
    "layer_collapse": "autosparse.topology.paths",
    "mask_diagnostics": "autosparse.topology.diagnostics",
    "compute_features": "autosparse.features",
    "load_scorer": "autosparse.scorer.loaded",
    "trace_graph": "autosparse.topology.graph",
}


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'autosparse' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    return getattr(importlib.import_module(module), attr)


__all__ = sorted(_EXPORTS)


def __dir__() -> list[str]:
    """The lazy exports too: ``dir(autosparse)`` and tab completion listed none of the API."""
    return sorted(set(globals()) | set(__all__))
