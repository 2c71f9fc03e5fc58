"""Bench cells: pure functions of a spec that write one JSON result each, atomically.

A cell is one (model, dataset, method, density, seed): build the model with init seed = seed,
compute the mask (timed), train under it with the bench's single recipe, record the result.
IMP is one job per (model, dataset, seed) — an IRP run whose schedule passes through every
bench density — that writes one cell per density.

A cell id is readable (``lenet_300_100__fashion-mnist__snip__d0.01__s0``) and ends with the
hash of everything that determines the number, so a changed recipe makes new cells instead of
silently reusing old ones, while adding a method or a seed leaves existing cells valid. Files
are written to a temporary name and renamed, so a killed job leaves either nothing or a
complete cell; a complete cell is never recomputed unless its method changed under it (a default,
a scorer's weights or card: :func:`read_current_cell`), and then the old one is kept. A job claims ``.claims/<job id>.lock``
(:mod:`autosparse.core.claims`) before it computes anything, so two bench processes on one
folder divide the grid between them instead of both computing the same cell.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from autosparse.bench.cell_records import (
    CONFIG_KEY,
    config_sha256,
    read_cell,
    read_current_cell,
    set_aside_stale,
)
from autosparse.bench.config import IMP, BenchConfig, CellData, ImpSettings, MethodSpec, imp_settings, slug
from autosparse.bench.outputs import CELLS_DIR
from autosparse.core import json_text
from autosparse.core.claims import claim, holder_name, in_progress_elsewhere
from autosparse.core.config_record import config_hash, to_dict
from autosparse.core.errors import AutosparseError, CheckpointError, UnknownNameError
from autosparse.core.folders import private_tmp
from autosparse.core.masks import Masks
from autosparse.core.versions import package_versions
from autosparse.data import Dataset, canonical_dataset, pruning_batch
from autosparse.pruners import prune_timed
from autosparse.pruners.registry import make_pruner
from autosparse.task import DataSpec, ModelSpec, Task
from autosparse.training.irp import IRPConfig, run_irp
from autosparse.training.trainer import COSMETIC_TRAIN_FIELDS, TrainConfig, resolve_device, train

log = logging.getLogger(__name__)

CELL_SCHEMA = 1  # bump when a cell's meaning changes: every cell id changes with it
WORK_DIR = "work"
CLAIMS_DIR = ".claims"  # one lock file per job: which process is computing it (never deleted)
RECORDED_PACKAGES = ("autosparse", "torch", "numpy")  # recorded in every cell: what can move its accuracy


@dataclass
class CellSpec:
    """Everything that determines one one-shot cell (IMP: one IRP job) and nothing else."""

    model: ModelSpec
    data: CellData
    method: MethodSpec
    seed: int
    train: TrainConfig
    density: float = 1.0  # one-shot cells
    schedule: tuple[float, ...] = ()  # IMP: the IRP target densities (the whole path determines each point)

    def hash(self) -> str:
        return recipe_hash(to_dict(self))

    def method_identity(self) -> dict[str, Any] | None:
        """What decides the method's masks beyond its hparams as written (PrunerConfig.identity,
        e.g. the weights of the scorer ``autos`` loads); None when it cannot be resolved yet (a
        scorer a later step trains: planning goes on, and ``run_bench``'s preflight refuses to start
        while it is still missing, with the error naming the fix).

        Not part of the cell id — ids name results on disk and must not move (tests/test_ids.py) —
        but recorded in the cell: a cell made with other weights is stale (:meth:`BenchJob.missing`).
        """
        if self.method.is_imp:
            return {}
        try:
            config = make_pruner(self.method.method, self.method.hparams).config
            identity = config.identity()
        except (CheckpointError, UnknownNameError):
            return None
        # every hyperparameter as resolved, defaults included: a default changed or added since the cell
        # (autos' rehome) changes masks that the hparams as written, and so the cell id, do not show
        return {**identity, CONFIG_KEY: config_sha256(dataclasses.asdict(config))}

    def stem(self) -> str:
        return "__".join(slug(p) for p in (self.model.label(), self.data.dataset, self.method.title()))

    def cell_id(self, density: float | None = None) -> str:
        d = float(self.density if density is None else density)
        text = format(d, "g") if float(format(d, "g")) == d else repr(d)
        return f"{self.stem()}__d{text}__s{self.seed}__{self.hash()}"

    def job_id(self) -> str:
        if self.method.is_imp:
            return f"{self.stem()}__s{self.seed}__{self.hash()}"
        return self.cell_id()

    def computation_id(self) -> str:
        """The job id without its labels: what two rows (or models) that differ only in name share.

        Jobs claim this, not their id, so a second label of one computation waits for the first
        and copies its cells (:meth:`BenchJob.adopt`) instead of computing them again beside it.
        """
        return self.job_id()[len(self.stem()) + 2 :]

    @property
    def task(self) -> Task:
        return Task(self.model, self.data)

    def train_config(self, threads: int = 0) -> TrainConfig:
        """The shared recipe, seeded by the cell seed (so seeds vary the run, not only the init)."""
        num_threads = self.train.num_threads or threads
        return dataclasses.replace(self.train, seed=self.seed, num_threads=num_threads)


def recipe_hash(spec: dict[str, Any]) -> str:
    """The hash a cell id ends with, of a spec in its :func:`to_dict` form (a cell's recorded ``spec``
    gives its own id's hash back): everything that determines the number, nothing that only names it."""
    d = copy.deepcopy(spec)
    d["model"].pop("name", None)
    d["method"].pop("label", None)
    d["data"].pop("data_root", None)  # where the same files live
    d["data"].pop("download", None)
    for k in COSMETIC_TRAIN_FIELDS:  # editing them reuses finished cells
        d["train"].pop(k, None)
    d["train"].pop("seed", None)  # the cell seed drives training order; see train_config()
    # seed and density are spelled out in the cell id, so the hash names the recipe: every
    # cell of one method under one recipe shares it
    d.pop("seed")
    d.pop("density")
    d["schema"] = CELL_SCHEMA
    return config_hash(d)


@dataclass
class BenchJob:
    """What an executor runs: one spec, the cells it writes, and where."""

    spec: CellSpec
    densities: tuple[float, ...]  # bench densities this job produces (one for a one-shot cell)
    out_dir: str
    threads: int = 0  # torch threads in the worker (0 = leave as is); never part of a result

    @property
    def key(self) -> str:
        return self.spec.job_id()

    @property
    def claim_key(self) -> str:
        """The claim's name: :meth:`CellSpec.computation_id`."""
        return self.spec.computation_id()

    def cell_ids(self) -> list[str]:
        return [self.spec.cell_id(d) for d in self.densities]

    def cell_paths(self) -> list[Path]:
        return [cell_path(self.out_dir, c) for c in self.cell_ids()]

    def missing(self) -> list[tuple[float, Path]]:
        """The cells still to compute: neither written under this id nor under another label (:meth:`adopt`)."""
        identity = self.spec.method_identity()
        return [
            (d, p)
            for d, p in zip(self.densities, self.cell_paths())
            if read_current_cell(p, identity) is None and self._elsewhere(p, identity) is None
        ]

    def adopt(self) -> int:
        """Copy each cell this job lacks but finds under another row or model label to its own id.

        Why: labels name the cell files but are not hashed (renaming a row must not recompute it,
        an IMP row's whole IRP run least of all); the copy carries the new labels, so the report,
        which reads cells by id, shows them. The old files stay for a config that still uses the old
        names. Returns how many were copied.
        """
        identity = self.spec.method_identity()
        copied = 0
        for d, path in zip(self.densities, self.cell_paths()):
            if read_current_cell(path, identity) is not None:
                continue
            record = self._elsewhere(path, identity)
            if record is None:
                continue
            record.update(
                cell_id=self.spec.cell_id(d),
                job_id=self.key,
                model=self.spec.model.label(),
                label=self.spec.method.title(),
                dataset=self.spec.data.dataset,
            )
            if isinstance(record.get("spec"), dict):  # the names in the recorded spec too
                record["spec"]["model"]["name"] = self.spec.model.name
                record["spec"]["method"]["label"] = self.spec.method.label
                record["spec"]["data"]["dataset"] = self.spec.data.dataset
            write_json_atomic(path, record)
            copied += 1
        return copied

    def is_complete(self) -> bool:
        return not self.missing()

    def settle(self) -> bool:
        """After the process that held this job's computation let it go: whether the job is done,
        its cells copied from another label's where that process computed them under that label."""
        with claim(claim_path(self.out_dir, self.claim_key)) as mine:
            if not mine:  # taken again meanwhile: waited for once more
                return False
            self.adopt()
            return self.is_complete()

    def _elsewhere(self, path: Path, identity: dict[str, Any] | None) -> dict[str, Any] | None:
        """A current cell of this computation under another id: relabelled, or its dataset respelled."""
        return _relabelled(path, identity) or _respelled(path, self.spec, identity)


def _relabelled(path: Path, identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """A current cell of the same computation as ``path`` under other labels: same density, seed and
    recipe hash (the id's last three parts), another model or row label (the first ones)."""
    same = "__" + "__".join(path.stem.split("__")[-3:]) + ".json"
    for other in sorted(path.parent.glob(f"*{same}")) if path.parent.is_dir() else ():
        if other != path and (record := read_current_cell(other, identity)) is not None:
            return record
    return None


def _respelled(path: Path, spec: CellSpec, identity: dict[str, Any] | None) -> dict[str, Any] | None:
    """A current cell of ``spec``'s computation at ``path``'s density, written when the bench hashed
    its dataset as the config spelled it (``fmnist``): same labels, seed and density, and a recorded
    spec that hashes to this id's recipe once its dataset is in the registered spelling.

    Why: cell ids name the dataset as registered since 2026-12-04; without this, a folder made
    before would recompute every cell (an IMP row its whole IRP run) on the next run.
    """
    if not path.parent.is_dir():
        return None
    want = spec.hash()
    stem = f"{slug(spec.model.label())}__*__{slug(spec.method.title())}__{path.stem.split('__')[-3]}__s{spec.seed}__*"
    for other in sorted(path.parent.glob(stem + ".json")):
        record = read_current_cell(other, identity) if other != path else None
        if record is None or not isinstance(recorded := record.get("spec"), dict):
            continue
        try:
            respelled = copy.deepcopy(recorded)
            respelled["data"]["dataset"] = canonical_dataset(str(respelled["data"]["dataset"]))
            if recipe_hash(respelled) == want:
                return record
        except (AutosparseError, KeyError, TypeError):
            continue  # a dataset this code no longer knows, or a spec of another shape: not this cell
    return None


def cell_path(out_dir: str | Path, cell_id: str) -> Path:
    return Path(out_dir) / CELLS_DIR / f"{cell_id}.json"


def claim_path(out_dir: str | Path, claim_key: str) -> Path:
    """The lock file a job holds while it computes (see :mod:`autosparse.core.claims`), named by its
    :attr:`BenchJob.claim_key`."""
    return Path(out_dir) / CLAIMS_DIR / f"{claim_key}.lock"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write to a unique temporary file in the same folder, then rename over ``path``.

    ``os.replace`` is atomic on one file system, so readers (and a rerun after a kill) see either
    the old file or the complete new one, never half a cell.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(path)
    try:
        with open(tmp, "w") as fh:
            fh.write(json_text.dumps(data, indent=1))  # a diverged cell's NaN loss as null: readable outside Python
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def plan_jobs(
    config: BenchConfig, out_dir: str | Path, threads: int = 0, *, imp_densities: Sequence[float] | None = None
) -> list[BenchJob]:
    """Every job of the grid; IMP jobs first because they are the longest (better packing on a pool).
    Their folder is absolute: a Ray worker resolves a relative one in its own working folder.

    ``imp_densities``: the densities IMP's schedule passes through, when the folder's grid has more
    than this run's (``--densities 0.1`` in a folder of 0.5, 0.2): one IRP run makes every density's
    cell, and the report reads the cells of the folder's schedule; IMP on this run's densities alone
    made cells no report read, and emptied the IMP row (review)."""
    out_dir = Path(out_dir).absolute()
    imp_jobs: list[BenchJob] = []
    jobs: list[BenchJob] = []
    bench_densities = tuple(config.sorted_densities())
    imp_grid = tuple(sorted(set(imp_densities), reverse=True)) if imp_densities else bench_densities
    for method in config.methods:
        if method.is_imp:
            _say_imp_pace(method, imp_settings(method).schedule(imp_grid))
    for model in config.models:
        for ds in config.datasets:
            data = config.cell_data(ds)
            for method in config.methods:
                for seed in config.seeds:
                    if method.is_imp:
                        schedule = tuple(imp_settings(method).schedule(imp_grid))
                        spec = CellSpec(model, data, method, seed, config.train, schedule=schedule)
                        imp_jobs.append(BenchJob(spec, imp_grid, str(out_dir), threads))
                        continue
                    for d in bench_densities:
                        spec = CellSpec(model, data, method, seed, config.train, density=d)
                        jobs.append(BenchJob(spec, (d,), str(out_dir), threads))
    return imp_jobs + jobs


_IMP_PACE_SAID: set[tuple[str, tuple[float, ...]]] = set()


def _say_imp_pace(method: MethodSpec, schedule: list[float]) -> None:
    """Warn when an IMP row prunes most of its survivors in one round.

    Why: the bench's ``imp`` goes straight from one bench density to the next, so a grid of 1% /
    0.5% prunes 99% of the dense net in its first round — a far weaker reference than the
    lottery-ticket pace (at most 20% a round) that "IMP" makes a reader expect. It is a choice a
    config may make (docs/BASELINES.md), but not one a user should make without knowing.
    """
    prev, worst = 1.0, 0.0
    for d in schedule:
        worst, prev = max(worst, 1.0 - d / prev), d
    said = (method.title(), tuple(schedule))
    if worst > 0.5 and said not in _IMP_PACE_SAID:  # once: the report plans the grid again
        _IMP_PACE_SAID.add(said)
        log.warning(
            "%s prunes up to %.0f%% of its surviving weights in one round (%d round(s) to %.3g); lottery-ticket IMP "
            "prunes at most 20%% a round: give it hparams {max_prune_fraction: 0.2} for that pace",
            method.title(),
            100 * worst,
            len(schedule),
            schedule[-1] if schedule else 1.0,
        )


# ------------------------------------------------------------------------------------------ running


@functools.lru_cache(maxsize=4)
def _load_cached(data: DataSpec) -> Dataset:
    # Loading Fashion-MNIST takes seconds; a worker runs many cells on the same data. Training
    # only reads the tensors (batches are index copies), so sharing one Dataset object is safe.
    return data.load()


def _setup(spec: CellSpec) -> tuple[Dataset, torch.nn.Module]:
    """The cell's data (cached per worker) and its model, initialised with the cell seed."""
    task = spec.task
    dataset = _load_cached(task.data)
    return dataset, task.build_model(dataset, spec.seed)


def _base_record(spec: CellSpec, density: float, dataset: Dataset) -> dict[str, Any]:
    return {
        "schema": CELL_SCHEMA,
        "cell_id": spec.cell_id(density),
        "job_id": spec.job_id(),
        "config_hash": spec.hash(),
        "model": spec.model.label(),
        "model_name": spec.model.model,
        "model_kwargs": spec.model.model_kwargs,
        "dataset": spec.data.dataset,
        "n_train": dataset.n_train,
        "n_test": dataset.n_test,
        "method": spec.method.method,
        "label": spec.method.title(),
        "hparams": spec.method.hparams,
        "reference": spec.method.is_imp,
        "density": float(density),
        "sparsity": 1.0 - float(density),
        "seed": spec.seed,
    }


def _mask_fields(masks: Masks) -> dict[str, Any]:
    layers = masks.layers()
    return {
        "actual_density": masks.density,
        "kept": masks.kept,
        "total": masks.total,
        "layer_densities": {r.name: r.density for r in layers},
        "layer_kept": {r.name: [r.kept, r.total] for r in layers},
        "empty_layers": masks.empty_layers(),
        # autos' guard: which layers got the fallback allocation, or why the whole mask was replaced
        **({"guard": masks.meta["guard"]} if "guard" in masks.meta else {}),
    }


def _finish(record: dict[str, Any], spec: CellSpec, device: str) -> dict[str, Any]:
    recorded = to_dict(spec)
    recorded["train"]["seed"] = spec.seed  # what it trained with (train_config): the config's 0 misled a rerun
    record.update(
        {
            "spec": recorded,
            "device": device,
            "host": socket.gethostname(),
            "written_by": holder_name(),
            "versions": package_versions(RECORDED_PACKAGES),
            "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    return record


def execute_job(job: BenchJob) -> dict[str, Any]:
    """Run one bench job (skipping it if all its cells exist) and write its cells; top-level for pickling.

    Returns :func:`~autosparse.core.claims.in_progress_elsewhere` when another live process holds
    the job's claim; :func:`~autosparse.bench.runner.run_bench` waits for it then.
    """
    with claim(claim_path(job.out_dir, job.claim_key)) as mine:
        if not mine:
            return in_progress_elsewhere(job.key)
        missing = job.missing()  # after the claim: another process may have just finished it
        if not missing:
            if job.adopt():  # a row of this grid doing the same computation under another name wrote them
                return {"job_id": job.key, "skipped": True, "same_as_another_row": True, "written": []}
            # another process did (the plan saw it missing): count it as done elsewhere, not nowhere
            return {"job_id": job.key, "skipped": True, "elsewhere": True, "written": []}
        if job.threads > 0:
            torch.set_num_threads(job.threads)
        if job.spec.method.is_imp:
            written = _run_imp(job, [d for d, _ in missing])
        else:
            written = [_run_one_shot(job)]
        return {"job_id": job.key, "skipped": False, "written": written}


def _run_one_shot(job: BenchJob) -> str:
    spec = job.spec
    dataset, model = _setup(spec)
    # every method gets the batch: data-free ones (SynFlow, NTK-SAP) read only its input shape
    pdata = pruning_batch(dataset, samples_per_class=spec.data.samples_per_class, seed=spec.seed)
    identity = spec.method_identity()  # before pruning: the weights the mask is made with
    pruned = prune_timed(
        model, spec.method.method, density=spec.density, data=pdata, seed=spec.seed, **spec.method.hparams
    )
    cfg = spec.train_config(job.threads)
    result = train(model, dataset, cfg, masks=pruned.masks, desc=f"{spec.method.title()} d={spec.density:g}")
    record = _base_record(spec, spec.density, dataset)
    if identity:
        record["method_identity"] = identity
    record.update(_mask_fields(pruned.masks))
    record.update(
        {
            "test_accuracy": result.test_accuracy,
            "train_loss": result.train_loss,
            "diverged": result.diverged,  # what said so, or None; the report marks the cell
            "time_to_mask": pruned.seconds,
            "train_seconds": result.seconds,
            "pruner_config": pruned.config,
        }
    )
    path = cell_path(job.out_dir, spec.cell_id())
    set_aside_stale(path, identity)
    write_json_atomic(path, _finish(record, spec, str(resolve_device(cfg.device))))
    log.info("%s: accuracy %.4f", spec.cell_id(), result.test_accuracy)
    return path.name


def _run_imp(job: BenchJob, densities: list[float]) -> list[str]:
    """One IRP run through the schedule; cells for the bench densities still missing.

    The IRP work folder keeps a checkpoint per round and is kept after the run: a killed job
    resumes at its last round, and a deleted IMP cell is re-derived without any training.
    """
    spec = job.spec
    settings: ImpSettings = imp_settings(spec.method)
    dataset, model = _setup(spec)
    irp_cfg = IRPConfig(
        criterion=settings.criterion,
        scope=settings.scope,
        rewind_step=settings.rewind_step,
        target_densities=spec.schedule,
    )
    batch = None
    if settings.criterion == "snip":
        batch = pruning_batch(dataset, samples_per_class=spec.data.samples_per_class, seed=spec.seed).batches[0]
    cfg = spec.train_config(job.threads)
    round_cfg = dataclasses.replace(cfg, epochs=settings.round_epochs) if settings.round_epochs else cfg
    workdir = Path(job.out_dir) / WORK_DIR / job.key
    # another bench process on this folder may hold the run: wait for it, then resume its finished rounds
    res = run_irp(model, dataset, irp_cfg, round_cfg, seed=spec.seed, workdir=workdir, criterion_batch=batch, wait=True)
    round_seconds = [float(h["seconds"]) for h in res.history]  # type: ignore[arg-type]
    rounds = {1.0: 0} | {d: i + 1 for i, d in enumerate(spec.schedule)}
    written = []
    for d in densities:
        r = rounds[float(d)]
        record = _base_record(spec, d, dataset)
        masks = res.masks_at_round(r)
        record.update(_mask_fields(masks))
        accuracy, loss, seconds = res.accuracies[r], None, round_seconds[r]
        diverged = res.history[r].get("diverged") if r < len(res.history) else None  # type: ignore[union-attr]
        # the mask of round r was chosen from the weights rounds before it trained: a divergence there left
        # diverged (or NaN) scores, the mask arbitrary, and the cell at chance marked as a valid reference (helper)
        earlier = next(
            (f"round {i}: {h['diverged']}" for i, h in enumerate(res.history[:r]) if h.get("diverged")), None
        )
        if settings.round_epochs:
            # short rounds find the mask; the cell is that mask trained from θ0 (run_irp left `model`
            # at θ0) with the recipe every one-shot cell gets
            trained = train(copy.deepcopy(model), dataset, cfg, masks=masks, desc=f"{spec.method.title()} d={d:g}")
            accuracy, loss, seconds = trained.test_accuracy, trained.train_loss, trained.seconds
            diverged = trained.diverged or earlier
            record.update({"imp_round_epochs": settings.round_epochs, "imp_round_accuracy": res.accuracies[r]})
        else:
            diverged = diverged or earlier
        record.update(
            {
                "test_accuracy": accuracy,
                "train_loss": loss,
                "diverged": diverged,
                # finding an IMP mask costs the training of every earlier round
                "time_to_mask": sum(round_seconds[:r]),
                "train_seconds": seconds,
                "imp_round": r,
                "imp_rounds": res.rounds,
                "imp_schedule": list(spec.schedule),
                # short rounds trained round 0 briefly: it is not the dense net under the recipe
                "dense_accuracy": None if settings.round_epochs else res.accuracies[0],
                "dense_diverged": None if settings.round_epochs else res.history[0].get("diverged"),
                "imp_curve": [{"density": dd, "accuracy": a} for dd, a in zip(res.densities, res.accuracies)],
            }
        )
        path = cell_path(job.out_dir, spec.cell_id(d))
        write_json_atomic(path, _finish(record, spec, str(resolve_device(cfg.device))))
        written.append(path.name)
    return written


__all__ = [
    "CELLS_DIR",
    "CELL_SCHEMA",
    "CLAIMS_DIR",
    "IMP",
    "BenchJob",
    "CellData",
    "CellSpec",
    "cell_path",
    "claim_path",
    "execute_job",
    "plan_jobs",
    "read_cell",
    "write_json_atomic",
]
