"""One source run: a model's features at initialisation and its IRP labels, into the store.

A source run is a pure function of its :class:`RunSpec`; its id is readable *and* carries a hash
of the full spec, so changing any setting (epochs, rounds, widths) makes a new run instead of
silently reusing an old one. The grid of runs and the executors that run them are
``data_gen``'s; this module is what one run does, so the demo and tests use it directly.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autosparse.core.config import config_hash, to_dict
from autosparse.core.versions import package_versions
from autosparse.data import pruning_batch
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION, compute_features
from autosparse.store import FeatureStore
from autosparse.task import DataSpec, ModelSpec, Task
from autosparse.topology.graph_arrays import graph_arrays
from autosparse.training.irp import IRPConfig, run_irp
from autosparse.training.trainer import TrainConfig, set_threads


@dataclass
class RunSpec:
    """Everything that determines one IRP run's result.

    The data fields stay flat here rather than a :class:`~autosparse.task.DataSpec`: this dict is
    hashed into the run id and recorded in the store, so its shape is an on-disk contract; the
    :attr:`task` is derived from it.
    """

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

    @property
    def task(self) -> Task:
        """The run's model on its data; a source run's data subset follows its seed."""
        data = DataSpec(self.dataset, self.n_train, self.n_test, self.data_root, data_seed=self.seed)
        return Task(self.model, data)


RECORDED_PACKAGES = ("autosparse", "torch", "torchvision", "zarr", "numpy")  # recorded with every run


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
    task = spec.task
    dataset = task.load_data()
    model = task.build_model(dataset, seed=spec.seed)
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
        "versions": package_versions(RECORDED_PACKAGES),
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
