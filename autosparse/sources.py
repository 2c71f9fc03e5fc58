"""One source run: a model's features at initialisation and its IRP labels, into the store.

A source run is a pure function of its :class:`RunSpec`; its id is readable *and* carries a hash
of the full spec, so changing any setting (epochs, rounds, widths) makes a new run instead of
silently reusing an old one. The grid of runs and the executors that run them are
``data_gen``'s; this module is what one run does, so the demo and tests use it directly.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autosparse.core.config import config_hash, to_dict
from autosparse.data import load_dataset, pruning_batch
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION, compute_features
from autosparse.models import build_model
from autosparse.store import FeatureStore
from autosparse.task import ModelSpec
from autosparse.topology.graph_arrays import graph_arrays
from autosparse.training.irp import IRPConfig, run_irp
from autosparse.training.trainer import TrainConfig, set_threads


@dataclass
class RunSpec:
    """Everything that determines one IRP run's result."""

    model: ModelSpec
    dataset: str
    seed: int
    irp: IRPConfig
    train: TrainConfig
    n_train: int | None = None
    n_test: int | None = None
    data_root: str | None = None
    samples_per_class: int = 10

    @property
    def run_id(self) -> str:
        dataset = self.dataset.replace(":", "-")  # store group names allow no ':' (fake:cifar10)
        return f"{self.model.label()}__{dataset}__s{self.seed}__{config_hash(self)}"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("autosparse", "torch", "torchvision", "zarr", "numpy"):
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


@dataclass
class RunJob:
    spec: RunSpec
    store: str
    workdir: str


def execute_run(job: RunJob) -> dict[str, Any]:
    """One IRP run, end to end: θ0 features, IRP labels, store group (marked complete last)."""
    spec = job.spec
    store = FeatureStore(job.store, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES))
    if store.is_complete(spec.run_id):
        return {"run_id": spec.run_id, "skipped": True}
    # The whole run (features included, not only training) uses the configured thread count, so its
    # numbers do not depend on what the executor's worker happened to default to (Ray sets 1 thread).
    set_threads(spec.train.num_threads)
    torch.manual_seed(spec.seed)
    dataset = load_dataset(spec.dataset, spec.data_root, n_train=spec.n_train, n_test=spec.n_test, seed=spec.seed)
    model = build_model(
        spec.model.model, tuple(dataset.input_shape), dataset.num_classes, seed=spec.seed, **spec.model.model_kwargs
    )
    pdata = pruning_batch(dataset, samples_per_class=spec.samples_per_class, seed=spec.seed)
    table = compute_features(model, pdata, seed=spec.seed)
    batch = pdata.batches[0]
    workdir = Path(job.workdir) / spec.run_id
    result = run_irp(model, dataset, spec.irp, spec.train, seed=spec.seed, workdir=workdir, criterion_batch=batch)
    label = torch.cat([result.labels[lf.name].reshape(-1) for lf in table.layers]).numpy().astype(np.int8)
    attrs = {
        "model": spec.model.model,
        "model_label": spec.model.label(),
        "model_kwargs": spec.model.model_kwargs,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "spec": to_dict(spec),
        "rounds": result.rounds,
        "accuracies": result.accuracies,
        "densities": result.densities,
        "layer_densities": result.layer_densities,
        "seconds_train": result.seconds_train,
        "seconds_total": result.seconds_total,
        "versions": _versions(),
    }
    store.write_run(
        spec.run_id,
        features=table.dense().numpy(),
        label=label,
        layer=table.layer_index().numpy(),
        layers_table=table.layer_table(),
        attrs=attrs,
        graph=graph_arrays(model, tuple(dataset.input_shape)),
    )
    shutil.rmtree(workdir, ignore_errors=True)  # the store holds the result now; round checkpoints are spent
    return {"run_id": spec.run_id, "skipped": False, "accuracies": result.accuracies, "seconds": result.seconds_total}
