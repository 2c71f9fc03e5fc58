"""A generation config is a grid (models × datasets × seeds) of IRP runs written into a store.

Each run is a pure function of its :class:`RunSpec`; its id is readable *and* carries a hash
of the full spec, so changing any setting (epochs, rounds, widths) makes a new run instead of
silently reusing an old one. Complete runs are skipped, killed runs resume from their last
round checkpoint, and a failing run is reported while the others go on. Any number of
``generate`` calls (processes, machines sharing the store's filesystem) may work on one store
and grid at once: they divide the runs through the store's per-run claims, and each returns
only when every run of the grid has ended (see :mod:`autosparse.store.jobs`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosparse.core.config import load_config
from autosparse.core.errors import ConfigError
from autosparse.data import canonical_dataset, dataset_info, default_data_root
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.sources import RunJob, RunSpec, execute_run
from autosparse.store import FeatureStore
from autosparse.store.jobs import run_store_jobs
from autosparse.store.writer import store_exists
from autosparse.task import ModelSpec
from autosparse.training.irp import IRPConfig
from autosparse.training.trainer import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class GenConfig:
    """The YAML of ``autosparse gen``: a grid of source runs (every model × dataset × seed)."""

    models: list[ModelSpec] = field(default_factory=lambda: [ModelSpec("lenet_300_100")])
    """source architectures: names (mlp,lenet5) or mappings with model, model_kwargs, name (YAML or JSON)"""
    datasets: list[str] = field(default_factory=lambda: ["fashion-mnist"])  # datasets every model is trained on
    seeds: list[int] = field(default_factory=lambda: [0])  # run seeds: initial weights, data subset, training order
    irp: IRPConfig = field(default_factory=IRPConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    n_train: int | None = None  # training examples per run, a stratified subset chosen by the seed (none: all)
    n_test: int | None = None  # test examples per run (none: all)
    data_root: str | None = None  # where datasets are read from (none: the default data folder)
    samples_per_class: int = 10  # examples per class in the batch the data-dependent features are computed on
    num_cpus: float = 1.0  # CPUs each run reserves on a Ray cluster (--executor ray)
    num_gpus: float = 0.0  # GPUs each run reserves on a Ray cluster (--executor ray)

    def __post_init__(self) -> None:
        for name in ("n_train", "n_test"):
            n = getattr(self, name)
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ConfigError(f"{name} must be a positive number of examples (or omitted: all), got {n!r}")
        if self.samples_per_class < 1:
            raise ConfigError(f"samples_per_class must be >= 1, got {self.samples_per_class}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> GenConfig:
        return load_config(cls, path)


def expand_grid(cfg: GenConfig) -> list[RunSpec]:
    if not cfg.models or not cfg.datasets or not cfg.seeds:
        raise ConfigError("a generation grid needs at least one model, one dataset and one seed")
    # one spelling per dataset: "Digits" and "digits" hashed to two ids for the same computation
    datasets = [canonical_dataset(d) for d in cfg.datasets]
    root = _data_root(cfg.data_root)
    # Seeds outermost: the first runs to finish already cover every architecture, so a scorer can
    # be trained on a partly generated store.
    specs = [
        RunSpec(m, d, s, cfg.irp, cfg.train, cfg.n_train, cfg.n_test, root, cfg.samples_per_class)
        for s in cfg.seeds
        for m in cfg.models
        for d in datasets
    ]
    first: dict[str, RunSpec] = {}
    for spec in specs:
        first.setdefault(spec.run_id, spec)  # the first of each, in grid order
    unique = list(first.values())
    if len(unique) < len(specs):
        log.warning(
            "the grid lists %d run(s) more than once (a model, dataset or seed repeated); each is generated once",
            len(specs) - len(unique),
        )
    return unique


def _data_root(root: str | None) -> str | None:
    """One spelling of the data folder, as it is hashed into the run ids: the default folder given
    explicitly is no folder given, and a relative one is made absolute (a Ray worker's working
    directory is not the driver's). Before, each spelling regenerated every run of the grid."""
    if root is None:
        return None
    path = Path(root).expanduser().absolute()
    return None if path == default_data_root().expanduser().absolute() else str(path)


def generate(
    cfg: GenConfig,
    store_path: str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    workers: int = 0,
) -> list[Any]:
    """Run every incomplete run of the grid; return one outcome per run that was not complete.

    A run another process is generating is waited for; its outcome's value then says
    ``elsewhere`` (:func:`~autosparse.store.jobs.is_elsewhere`). Failures are outcomes too.
    """
    # Absolute, because workers write the store themselves and a Ray worker's cwd is not the driver's.
    store_path = Path(store_path).absolute()
    store = FeatureStore(store_path, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES))
    specs = expand_grid(cfg)
    todo = [s for s in specs if not store.is_complete(s.run_id)]
    log.info("%d runs in the grid, %d already complete", len(specs), len(specs) - len(todo))
    workdir = str(Path(str(store_path).rstrip("/") + ".work"))
    jobs = [RunJob(s, str(store_path), workdir) for s in todo]
    return run_store_jobs(
        execute_run,
        jobs,
        [s.run_id for s in todo],
        store_path,
        executor=executor,
        address=address,
        workers=workers,
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus,
        desc="IRP runs",
    )


@dataclass
class GridCheck:
    """What ``gen`` would do with a grid and a store: the runs, and which of them the store already holds."""

    runs: list[str]
    complete: list[str]

    @property
    def todo(self) -> list[str]:
        done = set(self.complete)
        return [r for r in self.runs if r not in done]


def check_grid(cfg: GenConfig, store_path: str | Path) -> GridCheck:
    """Every check a ``gen`` run makes before its first IRP round, writing nothing.

    Why: a grid of hours fails late otherwise (a model option misspelt in the fifth model, a store
    made under another feature schema), after the first runs have taken their CPU time. Each model
    is built once for each dataset's shape (no data is loaded), and an existing store's schema is
    checked against this code's features.
    """
    specs = expand_grid(cfg)
    for d in cfg.datasets:
        _check_sizes(cfg, d)
    for m in cfg.models:
        for d in cfg.datasets:
            m.build(dataset_info(d), seed=0)
    runs = [s.run_id for s in specs]
    if not store_exists(store_path):
        return GridCheck(runs, [])
    store = FeatureStore(store_path, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES), create=False)
    return GridCheck(runs, [r for r in runs if store.is_complete(r)])


def _check_sizes(cfg: GenConfig, dataset: str) -> None:
    """The subset sizes and the rewind step against the dataset's nominal sizes, which are known
    without loading it: each failed every run of the grid after its data had loaded, or after its
    round 0 had trained."""
    info = dataset_info(dataset)
    for name, have in (("n_train", info.n_train), ("n_test", info.n_test)):
        n = getattr(cfg, name)
        if n is not None and have is not None and n > have:
            raise ConfigError(f"{name}={n} is more than {dataset}'s {have} examples; pass 1..{have} or omit it")
    n = cfg.n_train if cfg.n_train is not None else info.n_train
    if cfg.irp.rewind_step > 0 and n is not None:
        steps = max(1, int(round(cfg.train.epochs * max(1, math.ceil(n / cfg.train.batch_size)))))
        if cfg.irp.rewind_step > steps:
            raise ConfigError(
                f"irp.rewind_step={cfg.irp.rewind_step} is beyond the {steps} steps of round 0's training "
                f"({cfg.train.epochs:g} epochs of {n} examples in batches of {cfg.train.batch_size}); pass 1..{steps}"
            )
