"""One source run: a model's features at initialisation and its IRP labels, into the store.

A source run is a pure function of its :class:`RunSpec`; its id is readable *and* carries a hash
of the full spec, so changing any setting (epochs, rounds, widths) makes a new run instead of
silently reusing an old one. The grid of runs is ``data_gen``'s; this module is what one run
does, so the demo and tests use it directly. Each run is claimed in the store for the whole
job, so any number of processes can work through one grid (see :mod:`autosparse.store.jobs`).

The same module recomputes the features of finished runs under the current feature schema
(:func:`refeaturize_store`): the labels cost hours of IRP, the features seconds, so a schema
change must never force rerunning IRP — and refeaturized features come from the very function
(:func:`source_features`) that generation uses, so they equal a fresh run's bit for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autosparse.core.config import from_dict
from autosparse.core.config_record import config_hash, respelled, to_dict
from autosparse.core.errors import ConfigError, DatasetNotFoundError, StoreError
from autosparse.core.executors import JobOutcome
from autosparse.core.folders import check_output_path
from autosparse.core.versions import package_versions
from autosparse.data import Dataset, absolute_root, pruning_batch
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION, FeatureTable, compute_features
from autosparse.store import LABEL_KIND, FeatureStore, StoreReader, open_store
from autosparse.store.jobs import in_progress_elsewhere, run_store_jobs
from autosparse.store.layout import RESERVED_ATTRS, check_outside_stores
from autosparse.store.locks import holder
from autosparse.task import DataSpec, ModelSpec, Task
from autosparse.topology.graph_arrays import graph_arrays
from autosparse.training.irp import IRPConfig, run_irp
from autosparse.training.trainer import COSMETIC_TRAIN_FIELDS, TrainConfig, set_threads

log = logging.getLogger(__name__)


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
        """The store group of this run. Where the data files are is not part of it: the same run read
        from another folder duplicated every run of a store (as bench cells, which never hashed it)."""
        return self._id(dataclasses.replace(self, data_root=None))

    @property
    def id_with_data_root(self) -> str:
        """The id earlier code gave this run, with its data folder hashed as written (a store written
        then holds it under this id; where no folder was given it is :attr:`run_id`)."""
        return self._id(self)

    @property
    def recipe_id(self) -> str:
        """What the run's labels and features depend on: its id's hash less the training fields that only
        say how it ran (threads, the evaluation batch, per-epoch evaluation: ``COSMETIC_TRAIN_FIELDS``,
        which the bench's cells and IRP's checkpoints leave out too).

        Not the run id, which keeps its hash (ids name runs on disk; tests/test_ids.py): a grid
        rerun with ``--train.eval-batch-size 256`` finds its runs by this (:func:`same_recipe`)
        instead of generating each again as a duplicate.
        """
        return recipe_of(to_dict(self))

    def _id(self, hashed: RunSpec) -> str:
        # store group names allow letters, digits and ._+=- only: "tv:resnet18" and "fake:cifar10" keep
        # their words with '-' for the rest (every id valid before is unchanged)
        label, dataset = _id_part(self.model.label()), _id_part(self.dataset)
        tail = f"__{dataset}__s{self.seed}__{config_hash(hashed)}"
        return f"{label[: _MAX_ID - len(tail)]}{tail}"

    @property
    def task(self) -> Task:
        """The run's model on its data; a source run's data subset follows its seed."""
        data = DataSpec(self.dataset, self.n_train, self.n_test, self.data_root, data_seed=self.seed)
        return Task(self.model, data)


_MAX_ID = 200  # characters of a store group name (store.layout.check_name)


def _id_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]", "-", text).lstrip("._+=-") or "x"  # must start with a letter or digit


RECORDED_PACKAGES = ("autosparse", "torch", "torchvision", "zarr", "numpy")  # recorded with every run


@dataclass
class RunJob:
    spec: RunSpec
    store: str
    workdir: str
    #: where the worker reads the data: the spec's folder made absolute where the job was planned (a
    #: Ray worker's working folder is not the driver's); the spec records the folder as it was spelled
    data_root: str | None = None


def source_features(spec: RunSpec) -> tuple[nn.Module, Dataset, FeatureTable, tuple[torch.Tensor, torch.Tensor]]:
    """The run's model at θ0, its data, its features and its pruning batch: what generation and
    refeaturization share, so both compute features in exactly one way.

    The whole run (features included, not only training) uses the configured thread count, so its
    numbers do not depend on what the executor's worker happened to default to (Ray sets 1 thread).
    """
    set_threads(spec.train.num_threads)
    torch.manual_seed(spec.seed)
    task = spec.task
    dataset = task.load_data()
    model = task.build_model(dataset, seed=spec.seed)
    pdata = pruning_batch(dataset, samples_per_class=spec.samples_per_class, seed=spec.seed)
    table = compute_features(model, pdata, seed=spec.seed)
    return model, dataset, table, pdata.batches[0]


def held_id(store: FeatureStore, spec: RunSpec, earlier: Iterable[str] = ()) -> str | None:
    """The id ``store`` holds ``spec``'s run complete under, if any: its own, the one earlier code hashed the
    data folder into, or one of ``earlier`` (ids of other spellings a caller knows)."""
    for run_id in dict.fromkeys((spec.run_id, spec.id_with_data_root, *earlier)):
        if store.is_complete(run_id):
            return run_id
    return None


def recipe_of(spec: dict[str, Any]) -> str:
    """:attr:`RunSpec.recipe_id` of a spec in its :func:`to_dict` form, as a run records it.

    Of the record as written, not as read back: reading fills in the defaults of fields added since,
    and a run made before a field existed would count as a run of its default (review).
    """
    spec = {k: v for k, v in spec.items() if k != "data_root"}
    if isinstance(spec.get("train"), dict):
        spec["train"] = {k: v for k, v in spec["train"].items() if k not in COSMETIC_TRAIN_FIELDS}
    return config_hash(spec)


def same_recipe(store: FeatureStore, specs: Iterable[RunSpec]) -> dict[str, str]:
    """Of ``specs`` (runs not held under their own ids), those ``store`` holds as a complete run written with
    other settings no result depends on: run id -> that run's id (the first, in id order).

    Reads the record of every complete run, once, and only when there is a spec to look for; a run that
    records no spec is left out. ``gen`` and the demo both ask it (a rerun with other threads or another
    evaluation batch generated every run again, as duplicates a scorer then trained on twice).
    """
    specs = list(specs)
    if not specs:
        return {}
    by_recipe: dict[str, str] = {}
    for run_id in sorted(store.complete_runs()):
        recorded = store.run_attrs(run_id).get("spec")
        if isinstance(recorded, dict):
            by_recipe.setdefault(recipe_of(recorded), run_id)
    return {s.run_id: by_recipe[s.recipe_id] for s in specs if s.recipe_id in by_recipe}


def execute_run(job: RunJob) -> dict[str, Any]:
    """One IRP run, end to end: θ0 features, IRP labels, store group (marked complete last).

    Returns ``{"run_id", "skipped": True}`` for a run already complete, and
    :func:`~autosparse.store.jobs.in_progress_elsewhere` for one a live process holds.
    """
    spec = job.spec
    run_id = spec.run_id
    store = FeatureStore(job.store, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES))
    held = held_id(store, spec)
    if held is not None:
        return {"run_id": held, "skipped": True}
    with store.claim(run_id) as mine:
        if not mine:
            log.info("run %s: in progress elsewhere (%s); skipping it for now", run_id, holder(store.path, run_id))
            return in_progress_elsewhere(run_id)
        if store.is_complete(run_id):  # completed by another process between the check and the claim
            return in_progress_elsewhere(run_id)
        return _generate(spec, store, Path(job.workdir) / run_id, job.data_root)


def _generate(spec: RunSpec, store: FeatureStore, workdir: Path, data_root: str | None = None) -> dict[str, Any]:
    model, dataset, table, batch = source_features(
        dataclasses.replace(spec, data_root=data_root) if data_root else spec
    )
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


# ------------------------------------------------------------------------------------ refeaturize


@dataclass
class RefeaturizeJob:
    src: str
    dst: str
    run_id: str
    data_root: str | None = None  # where the run's dataset is now, if not where it was generated
    #: the driver's working folder, which a relative data_root the run recorded is relative to (a Ray
    #: worker's is another)
    base: str = "."


def recorded_spec(attrs: dict[str, Any], run_id: str, data_root: str | None = None) -> RunSpec:
    """The :class:`RunSpec` a source run recorded (``attrs["spec"]``), to recompute its θ0 from."""
    if not isinstance(attrs.get("spec"), dict):
        raise StoreError(
            f"run {run_id!r} records no spec (model, data, seed), so its features cannot be recomputed; "
            "regenerate it with `autosparse gen`"
        )
    spec = respelled(from_dict(RunSpec, attrs["spec"], where=f"run {run_id} spec"), attrs["spec"])
    if data_root is not None:
        spec.data_root = data_root  # where the data lives does not change it (the run id keeps the recorded one)
    elif run_id not in (spec.run_id, spec.id_with_data_root):
        log.warning(
            "run %s: its recorded spec now hashes to %s (a RunSpec field changed since it was generated); "
            "refeaturizing it under its old id — `autosparse gen` with this code would generate it anew",
            run_id,
            spec.run_id,
        )
    return spec


def refeaturize_run(job: RefeaturizeJob) -> dict[str, Any]:
    """Recompute one complete run's features from its recorded spec into ``job.dst``, keeping its
    labels, layer array and attrs (plus a ``refeaturized`` note). Same claims as :func:`execute_run`."""
    dst = FeatureStore(job.dst, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES))
    if dst.is_complete(job.run_id):
        return {"run_id": job.run_id, "skipped": True}
    with dst.claim(job.run_id) as mine:
        if not mine or dst.is_complete(job.run_id):
            return in_progress_elsewhere(job.run_id)
        src = StoreReader(job.src, where={"run_id": job.run_id}, same_schema=False)  # its labels, not its features
        run = src.load_run(job.run_id)
        spec = recorded_spec(run.attrs, job.run_id, job.data_root)
        if spec.data_root is not None and not Path(spec.data_root).expanduser().is_absolute():
            # read where the driver meant; the run keeps its recorded id and attrs
            spec = dataclasses.replace(spec, data_root=str(Path(job.base) / spec.data_root))
        try:
            model, dataset, table, _batch = source_features(spec)
        except DatasetNotFoundError as exc:
            if job.data_root is not None:
                raise
            # its advice (--download, "omit --data-root") is train's; this folder came from the run's record
            recorded = run.attrs["spec"].get("data_root")
            where = f"the data folder the run recorded, {recorded!r}" if recorded else "the default data folder"
            raise DatasetNotFoundError(
                f"run {job.run_id!r}: {spec.dataset} is not in {where}"
                + (
                    f" (read from {job.base}, where this command runs)"
                    if recorded and spec.data_root != recorded
                    else ""
                )
                + f"; pass `--data-root DIR` with the folder that holds it now ({str(exc).split(';')[0]})"
            ) from None
        new_layers = table.layer_table()
        if [(e["name"], list(e["shape"])) for e in new_layers] != [(e["name"], list(e["shape"])) for e in run.layers]:
            raise StoreError(
                f"run {job.run_id!r}: {spec.model.model} now builds other prunable layers than when it was generated "
                f"({[e['name'] for e in new_layers][:4]}… vs {[e['name'] for e in run.layers][:4]}…), so its labels "
                "no longer line up; regenerate it with `autosparse gen`"
            )
        note = {
            "from_store": str(Path(job.src).absolute()),
            "from_schema_version": src.schema_version,
            "schema_version": SCHEMA_VERSION,
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": package_versions(RECORDED_PACKAGES),
        }
        attrs = {k: v for k, v in run.attrs.items() if k not in RESERVED_ATTRS}
        attrs["refeaturized"] = [*attrs.get("refeaturized", []), note]
        dst.write_run(
            job.run_id,
            features=table.dense().numpy(),
            label=run.label,
            layer=run.layer,
            layers_table=new_layers,
            attrs=attrs,
            graph=graph_arrays(model, tuple(dataset.input_shape)),
            extra=run.extra,
        )
    return {"run_id": job.run_id, "skipped": False}


@dataclass
class RefeaturizeReport:
    """What :func:`refeaturize_store` did, run by run."""

    outcomes: list[JobOutcome]
    already_done: list[str]  # complete in DST before this call
    not_complete: list[str]  # runs of SRC that are incomplete or unreadable, so not copied

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if not o.ok]


def refeaturize_store(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    executor: str = "local",
    workers: int = 0,
    address: str | None = None,
    data_root: str | None = None,
) -> RefeaturizeReport:
    """Recompute the features of every complete run of ``src`` under the current schema into ``dst``.

    Nothing in ``src`` is changed. ``dst`` is created with this code's schema, or extended:
    runs already complete there are skipped, so an interrupted call resumes. Runs execute on
    ``executor`` (local, process, ray) and several calls may share one ``dst``.
    """
    src_path, dst_path = Path(src).absolute(), Path(dst).absolute()
    if src_path == dst_path or dst_path.is_relative_to(src_path) or src_path.is_relative_to(dst_path):
        raise ConfigError(f"--out {dst} must be a new store outside {src}: the source store is never changed")
    source = open_store(src_path)
    if source.label_kind != LABEL_KIND:
        raise StoreError(f"store {src} holds labels of kind {source.label_kind!r}; refeaturize handles {LABEL_KIND!r}")
    complete = source.complete_runs()
    not_complete = [r for r in source.run_ids() if r not in complete]
    if not_complete:
        log.info(
            "skipping %d incomplete or unreadable run(s) of %s: %s", len(not_complete), src, ", ".join(not_complete)
        )
    check_output_path(dst_path, flag="--out")  # the flag this command has (the store writer would say --store)
    check_outside_stores(dst_path, "--out")
    target = FeatureStore(dst_path, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES))
    done = [r for r in complete if target.is_complete(r)]
    todo = [r for r in complete if r not in done]
    log.info(
        "refeaturizing %d run(s) of %s (schema v%d) into %s (schema v%d); %d already there",
        len(todo),
        src,
        source.schema_version,
        dst,
        SCHEMA_VERSION,
        len(done),
    )
    jobs = [RefeaturizeJob(str(src_path), str(dst_path), r, absolute_root(data_root), os.getcwd()) for r in todo]
    outcomes = run_store_jobs(
        refeaturize_run, jobs, todo, dst_path, executor=executor, workers=workers, address=address, desc="refeaturize"
    )
    return RefeaturizeReport(outcomes, done, not_complete)
