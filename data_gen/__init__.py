"""Data generation: iterative rewind pruning (IRP) runs that label every weight of a source
model with the round it was pruned in, written into the zarr feature store.

The names below are exported lazily: ``autosparse --help`` loads this package for its ``gen``
subcommand, and importing them eagerly would import torch (seconds) just to list subcommands.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RunSpec": "autosparse.sources",
    "IRPConfig": "autosparse.training.irp",
    "IRPResult": "autosparse.training.irp",
    "run_irp": "autosparse.training.irp",
    "GenConfig": "data_gen.grid",
    "expand_grid": "data_gen.grid",
    "generate": "data_gen.grid",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'data_gen' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = sorted(_EXPORTS)
