"""Datasets as in-memory tensors, and the fixed batch that data-dependent pruners see.

One module per job: the dataset types (:mod:`~autosparse.data.dataset`), the name registry and
loading (:mod:`~autosparse.data.registry`), conversion and normalisation
(:mod:`~autosparse.data.convert`), seeded subsets (:mod:`~autosparse.data.sampling`), the pruning
batch (:mod:`~autosparse.data.pruning_data`), where files live (:mod:`~autosparse.data.roots`),
``fake:<name>`` data (:mod:`~autosparse.data.fake`), and one loader module per source family
(IDX files, torchvision sets, MNIST-1D, digits), each registering its datasets on import.
"""

from __future__ import annotations

from autosparse.data import digits, idx, mnist1d, torchvision_sets  # noqa: F401  (register the loaders)
from autosparse.data.dataset import Dataset, DatasetInfo, TensorBatches
from autosparse.data.fake import FAKE_PREFIX
from autosparse.data.idx import read_idx
from autosparse.data.pruning_data import PruningData, pruning_batch
from autosparse.data.registry import (
    available_datasets,
    canonical_dataset,
    check_dataset_files,
    check_subset_sizes,
    dataset_info,
    load_dataset,
    register_dataset,
)
from autosparse.data.roots import absolute_root, cache_dir, default_data_root, resolve_data_root
from autosparse.data.sampling import stratified_indices

__all__ = [
    "FAKE_PREFIX",
    "Dataset",
    "DatasetInfo",
    "PruningData",
    "TensorBatches",
    "absolute_root",
    "available_datasets",
    "cache_dir",
    "canonical_dataset",
    "check_dataset_files",
    "check_subset_sizes",
    "dataset_info",
    "default_data_root",
    "load_dataset",
    "pruning_batch",
    "read_idx",
    "register_dataset",
    "resolve_data_root",
    "stratified_indices",
]
