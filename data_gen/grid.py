"""A generation config is a grid (models × datasets × seeds) of IRP runs written into a store.

Each run is a pure function of its :class:`RunSpec`; its id is readable *and* carries a hash
of the full spec, so changing any setting (epochs, rounds, widths) makes a new run instead of
silently reusing an old one. Complete runs are skipped, killed runs resume from their last
round checkpoint, and a failing run is reported while the others go on.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autosparse.config import config_hash, from_dict, load_yaml, to_dict
from autosparse.errors import ConfigError
from autosparse.train import TrainConfig
from data_gen.irp import IRPConfig, run_irp

log = logging.getLogger(__name__)


@dataclass
class ModelSpec:
    model: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    name: str = ""  # short label for run ids; defaults to the model name plus its options

    def label(self) -> str:
        if self.name:
            return self.name
        if not self.model_kwargs:
            return self.model
        opts = "_".join(
            f"{k}{'x'.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
            for k, v in sorted(self.model_kwargs.items())
        )
        return f"{self.model}-{opts}"


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


@dataclass
class GenConfig:
    """The YAML of ``autosparse gen``: a grid of source runs."""

    models: list[ModelSpec] = field(default_factory=lambda: [ModelSpec("lenet_300_100")])
    datasets: list[str] = field(default_factory=lambda: ["fashion-mnist"])
    seeds: list[int] = field(default_factory=lambda: [0])
    irp: IRPConfig = field(default_factory=IRPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    n_train: int | None = None
    n_test: int | None = None
    data_root: str | None = None
    samples_per_class: int = 10
    num_cpus: float = 1.0  # per Ray task
    num_gpus: float = 0.0

    @classmethod
    def from_yaml(cls, path: str | Path) -> GenConfig:
        data = load_yaml(path)
        models = data.get("models", [])
        data["models"] = [{"model": m} if isinstance(m, str) else m for m in models]
        return from_dict(cls, data, where=str(path))


def expand_grid(cfg: GenConfig) -> list[RunSpec]:
    if not cfg.models or not cfg.datasets or not cfg.seeds:
        raise ConfigError("a generation grid needs at least one model, one dataset and one seed")
    # Seeds outermost: the first runs to finish already cover every architecture, so a scorer can
    # be trained on a partly generated store.
    return [
        RunSpec(m, d, s, cfg.irp, cfg.train, cfg.n_train, cfg.n_test, cfg.data_root, cfg.samples_per_class)
        for s in cfg.seeds
        for m in cfg.models
        for d in cfg.datasets
    ]


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
    from autosparse.data import load_dataset, pruning_batch
    from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION, compute_features
    from autosparse.models import build_model
    from autosparse.store import FeatureStore
    from autosparse.train import set_threads

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
        graph=_graph_arrays(model, tuple(dataset.input_shape)),
    )
    shutil.rmtree(workdir, ignore_errors=True)  # the store holds the result now; round checkpoints are spent
    return {"run_id": spec.run_id, "skipped": False, "accuracies": result.accuracies, "seconds": result.seconds_total}


def _graph_arrays(model: torch.nn.Module, input_shape: tuple[int, ...]) -> dict[str, np.ndarray] | None:
    """The unit-level graph the GNN scorer trains on (None when no GNN support is installed)."""
    try:
        from autosparse.scorer.gnn_data import graph_arrays
    except ImportError:
        return None
    return graph_arrays(model, input_shape)


def generate(
    cfg: GenConfig,
    store_path: str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    workers: int = 0,
) -> list[Any]:
    """Run every incomplete run of the grid; return the outcomes (failures included)."""
    from autosparse.executors import run_jobs
    from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
    from autosparse.store import FeatureStore

    # Absolute, because workers write the store themselves and a Ray worker's cwd is not the driver's.
    store_path = Path(store_path).absolute()
    store = FeatureStore(store_path, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES))
    specs = expand_grid(cfg)
    todo = [s for s in specs if not store.is_complete(s.run_id)]
    log.info("%d runs in the grid, %d already complete", len(specs), len(specs) - len(todo))
    workdir = str(Path(str(store_path).rstrip("/") + ".work"))
    jobs = [RunJob(s, str(store_path), workdir) for s in todo]
    return run_jobs(
        execute_run,
        jobs,
        [s.run_id for s in todo],
        executor=executor,
        address=address,
        workers=workers,
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
        desc="IRP runs",
    )
