"""Data generation: iterative rewind pruning (IRP) runs that label every weight of a source
model with the round it was pruned in, written into the zarr feature store."""

from data_gen.grid import GenConfig, RunSpec, expand_grid, generate
from data_gen.irp import IRPConfig, IRPResult, run_irp

__all__ = ["GenConfig", "IRPConfig", "IRPResult", "RunSpec", "expand_grid", "generate", "run_irp"]
