"""The benchmark harness: accuracy vs sparsity next to baselines, reproducibly, and time to mask.

``run_bench(BenchConfig, out_dir)`` computes a grid of cells (model × dataset × method × density ×
seed; IMP from one IRP run per model, dataset and seed) on any executor, never recomputing a
finished cell, and writes ``report.md`` with tables and plots; ``run_speed(SpeedConfig, out_dir)``
measures time to mask and peak memory per method. ``autosparse bench`` is the command line.
"""

from __future__ import annotations

from autosparse.bench.cells import BenchJob, CellSpec, execute_job, plan_jobs, read_cell
from autosparse.bench.config import IMP, BenchConfig, CellData, ImpSettings, MethodSpec, config_kind
from autosparse.bench.report import BenchReport, collect, write_report
from autosparse.bench.runner import BenchRun, run_bench
from autosparse.bench.speed import SpeedConfig, SpeedModel, SpeedResult, run_speed

__all__ = [
    "IMP",
    "BenchConfig",
    "BenchJob",
    "BenchReport",
    "BenchRun",
    "CellData",
    "CellSpec",
    "ImpSettings",
    "MethodSpec",
    "SpeedConfig",
    "SpeedModel",
    "SpeedResult",
    "collect",
    "config_kind",
    "execute_job",
    "plan_jobs",
    "read_cell",
    "run_bench",
    "run_speed",
    "write_report",
]
