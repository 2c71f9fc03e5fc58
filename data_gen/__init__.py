"""Data generation: iterative rewind pruning (IRP) runs that label every weight of a source
model with the round it was pruned in, written into the zarr feature store."""

from autosparse.sources import RunSpec
from autosparse.training.irp import IRPConfig, IRPResult, run_irp
from data_gen.grid import GenConfig, expand_grid, generate

__all__ = ["GenConfig", "IRPConfig", "IRPResult", "RunSpec", "expand_grid", "generate", "run_irp"]
