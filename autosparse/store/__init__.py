"""The zarr feature store between IRP data generation and scorer training (DESIGN.md §5).

``FeatureStore`` creates a store and writes runs (one zarr group per IRP run, marked
``complete`` last; any number of processes at once, see ``autosparse.store.jobs``);
``StoreReader`` reads complete runs only, filtered by their attributes
(``autosparse.store.filters``), as whole runs or as a stream of shuffled torch batches;
``validate_store`` / ``store_info`` / ``repair_store`` check, summarise and repair a store;
``autosparse.store.throughput`` measures its throughput. zarr and torch are
imported on first use, so importing this package stays cheap for the CLI.
"""

from __future__ import annotations

from autosparse.store.filters import parse_filter
from autosparse.store.info import run_table, store_info
from autosparse.store.layout import LABEL_KIND, STORE_FORMAT, StorageOptions
from autosparse.store.reader import Batch, RunData, StoreReader
from autosparse.store.validate import ValidationReport, repair_store, validate_store
from autosparse.store.writer import FeatureStore, open_store

__all__ = [
    "LABEL_KIND",
    "STORE_FORMAT",
    "Batch",
    "FeatureStore",
    "RunData",
    "StorageOptions",
    "StoreReader",
    "ValidationReport",
    "open_store",
    "parse_filter",
    "repair_store",
    "run_table",
    "store_info",
    "validate_store",
]
