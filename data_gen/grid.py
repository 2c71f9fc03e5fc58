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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosparse.core.config import from_dict, listed, load_config
from autosparse.core.errors import ConfigError, check_integers
from autosparse.core.executors import check_resources
from autosparse.core.folders import cannot_create_in
from autosparse.core.text import count_of
from autosparse.data import (
    absolute_root,
    canonical_dataset,
    check_dataset_files,
    check_subset_sizes,
    dataset_info,
    default_data_root,
)
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.sources import RunJob, RunSpec, execute_run, held_id, same_recipe
from autosparse.store import FeatureStore
from autosparse.store.jobs import run_store_jobs
from autosparse.store.layout import RUNS, check_outside_stores, foreign_entries, missing_arrays
from autosparse.store.writer import store_exists
from autosparse.task import ModelSpec
from autosparse.training.irp import IRPConfig, check_rewind_step
from autosparse.training.trainer import COSMETIC_TRAIN_FIELDS, TrainConfig, check_job_device

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
    data_root: str | None = None  # where datasets are read from (none: a system copy, then the default folder)
    samples_per_class: int = 10  # examples per class in the batch the data-dependent features are computed on
    num_cpus: float = 1.0  # CPUs each run reserves on a Ray cluster (--executor ray)
    num_gpus: float = 0.0  # GPUs each run reserves on a Ray cluster (--executor ray)

    def __post_init__(self) -> None:
        self._as_the_yaml_gives_it()
        check_resources(self.num_cpus, self.num_gpus)
        if self.samples_per_class < 1:
            raise ConfigError(f"samples_per_class must be >= 1, got {self.samples_per_class}")
        if self.train.seed != 0:  # each round's order follows the run seed: this one changed the ids alone
            raise ConfigError(
                f"train.seed={self.train.seed} has no effect in gen: each run's seed (seeds: {list(self.seeds)}) sets "
                "its weights, data subset and every round's training order; remove train.seed and choose the runs' "
                "seeds with seeds"
            )

    def _as_the_yaml_gives_it(self) -> None:
        """A grid built in Python takes what its YAML takes: model names or mappings, one dataset or seed
        where a list belongs, mappings for irp and train. They failed deep inside (a name had no
        ``.label``; "fake:fashion-mnist" read as the datasets f, a, k, …) or every run failed after the
        store was made (seeds ["0"]; Python-jobs hunt)."""
        self.models = listed(self.models, ModelSpec, where="a grid model")
        self.datasets, self.seeds = listed(self.datasets), listed(self.seeds)
        self.seeds = check_integers(self.seeds, "seeds")
        if isinstance(self.irp, dict):
            self.irp = from_dict(IRPConfig, self.irp, where="irp")
        if isinstance(self.train, dict):
            self.train = from_dict(TrainConfig, self.train, where="train")

    @classmethod
    def from_yaml(cls, path: str | Path) -> GenConfig:
        return load_config(cls, path)


def expand_grid(cfg: GenConfig, *, warn: bool = True) -> list[RunSpec]:
    """The grid's runs, each once, in grid order (seeds outermost: the first runs to finish already
    cover every architecture, so a scorer can be trained on a partly generated store)."""
    return [spec for spec, _ in _grid(cfg, warn=warn)]


def _grid(cfg: GenConfig, *, warn: bool = True) -> list[tuple[RunSpec, tuple[str, ...]]]:
    """Each run of the grid with the ids earlier code gave it: before dataset names were hashed in one
    spelling, and while the data folder was hashed in. A store written then holds it under one of
    them, which :func:`generate` counts as this run."""
    if not cfg.models or not cfg.datasets or not cfg.seeds:
        raise ConfigError("a generation grid needs at least one model, one dataset and one seed")
    root = _data_root(cfg.data_root)
    pairs = []
    for s in cfg.seeds:
        for m in cfg.models:
            for d in cfg.datasets:
                spec = RunSpec(
                    m, canonical_dataset(d), s, cfg.irp, cfg.train, cfg.n_train, cfg.n_test, root, cfg.samples_per_class
                )
                written = RunSpec(
                    m, d, s, cfg.irp, cfg.train, cfg.n_train, cfg.n_test, cfg.data_root, cfg.samples_per_class
                )
                pairs.append((spec, (written.id_with_data_root,)))  # its own earlier id: held_id looks there
    first: dict[str, tuple[RunSpec, tuple[str, ...]]] = {}
    for spec, earlier in pairs:
        first.setdefault(spec.run_id, (spec, earlier))  # the first of each, in grid order
    if warn and len(first) < len(pairs):
        log.warning(
            "the grid lists %d run(s) more than once (a model, dataset or seed repeated, or one dataset spelled "
            "two ways); each is generated once",
            len(pairs) - len(first),
        )
    return list(first.values())


def _data_root(root: str | None) -> str | None:
    """The data folder as the runs record it: the default folder written out is no folder given.
    Run ids no longer hash the folder (:attr:`RunSpec.run_id`); earlier ones did, as written."""
    if root is None:
        return None
    return None if Path(root).expanduser().absolute() == default_data_root().expanduser().absolute() else root


def _say_broken(store_path: Path, done: list[str]) -> None:
    """Name the runs counted complete whose arrays' metadata is gone: left as they are (nothing written is
    removed by gen), with the commands that regenerate them."""
    broken = [run_id for run_id in done if missing_arrays(store_path, run_id)]
    if broken:
        log.warning(
            "%s counted complete but broken (array metadata missing): %s; `autosparse store repair %s` sets "
            "%s aside, then this command regenerates %s",
            count_of(len(broken), "run"),
            ", ".join(broken[:4]) + (" …" if len(broken) > 4 else ""),
            store_path,
            *(("it", "it") if len(broken) == 1 else ("them", "them")),
        )


def _held(store: FeatureStore, grid: list[tuple[RunSpec, tuple[str, ...]]]) -> dict[str, str | None]:
    """Each run of the grid (by its id) and the id the store holds it complete under, if any: read once
    for what is left to do and for :func:`_say_broken`. A run written with other settings no result
    depends on (``--train.eval-batch-size 256``, other threads) is that run: it was generated again, as a
    duplicate a scorer then trained on twice (hunt)."""
    held = {spec.run_id: held_id(store, spec, earlier) for spec, earlier in grid}
    found = same_recipe(store, (spec for spec, _ in grid if held[spec.run_id] is None))
    if found:
        log.info(
            "%s of the grid %s complete under the id of a run written with other %s (settings no label or "
            "feature depends on): not generated again (%s)",
            count_of(len(found), "run"),
            "is" if len(found) == 1 else "are",
            "/".join(COSMETIC_TRAIN_FIELDS),
            ", ".join(f"{a} as {b}" for a, b in list(found.items())[:3]) + (" …" if len(found) > 3 else ""),
        )
    return {**held, **found}


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
    grid = _grid(cfg)
    specs = [spec for spec, _ in grid]
    check_settings(cfg)  # before the store is made: a grid that cannot run leaves nothing behind
    check_job_device(cfg.train.device, executor, cfg.num_gpus)  # here each run would fail the same way
    if not store_exists(store_path):
        _check_dataset_files(specs)  # before the store is made
    store = FeatureStore(store_path, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES))
    held = _held(store, grid)
    todo = [spec for spec, _ in grid if held[spec.run_id] is None]
    _say_broken(store_path, [h for h in held.values() if h is not None])
    _check_store_takes(store_path, [s.run_id for s in todo])
    _check_dataset_files(todo)
    log.info("%d runs in the grid, %d already complete", len(specs), len(specs) - len(todo))
    workdir = str(Path(str(store_path).rstrip("/") + ".work"))
    jobs = [RunJob(s, str(store_path), workdir, absolute_root(s.data_root)) for s in todo]
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


def check_grid(cfg: GenConfig, store_path: str | Path, *, executor: str = "local") -> GridCheck:
    """Every check a ``gen`` run makes before its first IRP round, writing nothing.

    Why: a grid of hours fails late otherwise (a model option misspelt in the fifth model, a store
    made under another feature schema), after the first runs have taken their CPU time. Each model
    is built once for each dataset's shape (no data is loaded), and an existing store's schema is
    checked against this code's features.
    """
    grid = _grid(cfg)
    check_settings(cfg)
    check_job_device(cfg.train.device, executor, cfg.num_gpus)  # as generate() does (it said valid; hunt)
    check_outside_stores(store_path, "--store")  # what the writer refuses, said by --check too
    runs = [spec.run_id for spec, _ in grid]
    if not store_exists(store_path):
        _check_dataset_files([spec for spec, _ in grid])
        return GridCheck(runs, [])
    store = FeatureStore(store_path, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES), create=False)
    held = _held(store, grid)
    done = [spec.run_id for spec, _ in grid if held[spec.run_id] is not None]
    _say_broken(Path(store_path), [h for h in held.values() if h is not None])
    _check_store_takes(store_path, [r for r in runs if r not in done])
    _check_dataset_files([spec for spec, _ in grid if spec.run_id not in done])
    return GridCheck(runs, done)


def _check_dataset_files(todo: list[RunSpec]) -> None:
    """Each dataset a run still to generate reads has its files (none is read here).

    Why: `gen --check` called a grid on a missing dataset valid, and the run then failed every run of
    it with the same "not found" (helper); the bench checked this already.
    """
    for dataset, root in dict.fromkeys((s.dataset, s.data_root) for s in todo):
        check_dataset_files(dataset, root)


def _check_store_takes(store_path: str | Path, todo: list[str]) -> None:
    """Refuse, before any training, a store this grid cannot write its ``todo`` runs into.

    Why: a read-only store passed ``--check``, then failed every run on its lock file (helper); and a
    run would land on a folder that is no run of the store (a copy of another run, a scorer), which the
    store never replaces (review).
    """
    if not todo:
        return
    why = cannot_create_in(Path(store_path) / RUNS)
    if why is not None:
        raise ConfigError(
            f"--store {store_path} cannot be written ({why}), and {len(todo)} run(s) of this grid are still to "
            f"generate there; give a store you can write to (`autosparse store copy {store_path} --out COPY.zarr` "
            "copies its runs)"
        )
    foreign = foreign_entries(Path(store_path))
    clash = [r for r in todo if r in foreign]
    if clash:
        raise ConfigError(
            f"{Path(store_path) / RUNS / clash[0]} is in the way of run {clash[0]!r} and is no run of this store "
            f"({foreign[clash[0]]}); move it out of {RUNS}/ and rerun"
        )


def check_settings(cfg: GenConfig) -> None:
    """Each model built for each dataset's shape, the subset sizes and the rewind step against the
    dataset's nominal sizes: all known without loading data, and each otherwise failed every run of
    the grid (after its data loaded, or after its round 0 trained)."""
    for d in cfg.datasets:
        check_subset_sizes(d, cfg.n_train, cfg.n_test)
        n = cfg.n_train if cfg.n_train is not None else dataset_info(d).n_train
        try:
            check_rewind_step(cfg.irp.rewind_step, cfg.train, n)
        except ConfigError as e:
            raise ConfigError(f"irp.{e}") from None
    for m in cfg.models:
        for d in cfg.datasets:
            m.build(dataset_info(d), seed=0)
