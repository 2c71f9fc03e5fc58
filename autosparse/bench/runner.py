"""Run a bench grid on an executor, skipping finished cells, then write the report.

The executor (``local`` | ``process`` | ``ray``, from :mod:`autosparse.core.executors`) only decides
where jobs run: each job is a pure function of its spec that writes its own cell files, so the
three give the same numbers, a rerun after a kill only computes what is missing, and one failing
cell is reported without losing the others. Two bench processes on one folder divide the grid:
each job is claimed before it runs, a job another process holds is waited for at the end (and
computed here only if that process dies or fails before finishing it).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosparse.bench.cells import BenchJob, claim_path, execute_job, plan_jobs
from autosparse.bench.config import BenchConfig, refuse_unloadable, same_settings, unloadable_methods
from autosparse.bench.outputs import CONFIG_FILE, check_folder_kind, check_record_whole, record_text
from autosparse.bench.report import BenchReport, write_report
from autosparse.core.claims import exclusive, is_elsewhere, run_claimed_jobs
from autosparse.core.config import from_dict, load_yaml
from autosparse.core.config_record import dump_yaml, record_dict, respelled, to_dict
from autosparse.core.errors import AutosparseError, ConfigError, UnknownNameError
from autosparse.core.executors import EXECUTORS, JobOutcome
from autosparse.core.folders import check_output_path, make_output_dir, write_text
from autosparse.core.text import count_of
from autosparse.data import canonical_dataset, check_dataset_files
from autosparse.training.trainer import COSMETIC_TRAIN_FIELDS, check_job_device

log = logging.getLogger(__name__)


@dataclass
class BenchRun:
    """What a call to :func:`run_bench` did (the report itself is on disk and in ``report``)."""

    out_dir: Path
    jobs_total: int
    jobs_run: int
    cells_total: int
    cells_done_before: int
    jobs_elsewhere: int = 0  # jobs another bench process on the folder computed while this one ran
    jobs_same: int = 0  # jobs whose cells another row of the grid computed (one computation, two names)
    failures: list[JobOutcome] = field(default_factory=list)
    report: BenchReport | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


def _threads_per_job(config: BenchConfig, executor: str, workers: int) -> int:
    """Torch threads per job, so parallel jobs do not oversubscribe the cores.

    An explicit ``train.num_threads`` wins (it also makes results independent of the executor,
    since float reductions depend on the thread count). ``local`` keeps torch's default.
    """
    if config.train.num_threads > 0:
        return config.train.num_threads
    cores = os.cpu_count() or 1
    if executor == "process":
        return max(1, cores // max(1, workers or cores))
    if executor == "ray":
        return max(1, int(config.num_cpus))
    return 0


def unloadable_rows(jobs: list[BenchJob]) -> dict[str, AutosparseError]:
    """The rows of ``jobs`` whose method cannot run here, by label, with why (``autos``: its scorer)."""
    return unloadable_methods(j.spec.method for j in jobs)


def _preflight(config: BenchConfig, todo: list[BenchJob], selected: list[str] | None = None) -> None:
    """Check what each method still to run will need (``autos``: its scorer) before any cell trains,
    so a grid does not find out hours in."""
    refuse_unloadable(unloadable_rows(todo), selected or config.method_titles())


@dataclass
class BenchPlan:
    """What a bench would do in a folder: its jobs, those still to run, and the cells they hold."""

    jobs: list[BenchJob]
    todo: list[BenchJob]
    cells_total: int
    cells_done: int


def plan_bench(
    config: BenchConfig,
    out_dir: str | Path,
    *,
    executor: str = "local",
    workers: int = 0,
    methods: list[str] | None = None,
) -> BenchPlan:
    """Validate ``config`` and plan it against the cells in ``out_dir``, writing nothing.

    Every check a run makes before its first cell happens here (names, hyperparameters, the
    device, each row's scorer, that each dataset still to be trained on has its files), so ``bench --check`` fails exactly where a run would, hours
    earlier and without creating ``out_dir``.
    """
    if executor not in EXECUTORS:
        raise UnknownNameError("executor", executor, EXECUTORS)
    config.validate()
    for first, second in same_settings(config.methods):
        log.warning(
            "bench rows %r and %r run one method with the same settings (a default written out): their cells "
            "are computed twice and give the same numbers; drop one, or give it a setting of its own",
            first,
            second,
        )
    check_job_device(config.train.device, executor, config.num_gpus)  # before any cell: one error, not one per cell
    config.check_models()
    out = check_output_path(out_dir)  # a file given as --out: one error, not a warning per cell it cannot read
    check_folder_kind(out, "accuracy")  # a speed bench's folder: its report.md would be replaced
    folder = folder_config(out, config, say=False)  # IMP passes through the folder's densities (plan_jobs)
    jobs = plan_jobs(
        config, out_dir, threads=_threads_per_job(config, executor, workers), imp_densities=folder.densities
    )
    if methods:
        titles = config.method_titles()
        unknown = [m for m in methods if m not in titles]
        if unknown:
            raise UnknownNameError("method label", unknown[0], titles, hint="labels are the rows of the bench config")
        jobs = [j for j in jobs if j.spec.method.title() in methods]
    todo: list[BenchJob] = [j for j in jobs if not j.is_complete()]
    _preflight(config, todo, methods)
    # each job still to run reads its data: one "not found" now, not one per cell (no file is read here)
    for data in dict.fromkeys(j.spec.data for j in todo):
        check_dataset_files(data.dataset, data.data_root, download=data.download)
    cells_total = sum(len(j.densities) for j in jobs)
    return BenchPlan(jobs, todo, cells_total, cells_total - sum(len(j.missing()) for j in todo))


def run_bench(
    config: BenchConfig,
    out_dir: str | Path,
    *,
    executor: str = "local",
    address: str | None = None,
    workers: int = 0,
    methods: list[str] | None = None,
    report: bool = True,
) -> BenchRun:
    """Compute every missing cell of ``config`` into ``out_dir`` and (re)write the report there.

    ``methods`` restricts this call to some method labels (e.g. to run the baselines while a
    new method is still being written); their cells are the same ones a full run would make.
    The config is validated first, so a typo in a method name fails before any training.
    """
    out_dir = Path(out_dir).absolute()  # as plan_jobs' jobs carry it: a Ray worker's folder is not the driver's
    plan = plan_bench(config, out_dir, executor=executor, workers=workers, methods=methods)
    out = make_output_dir(out_dir)
    with exclusive(out / GRID_LOCK):  # another bench on this folder merges its rows in as well, not over ours
        folder = folder_config(out, config)  # a part of the folder's grid (`--methods snip`) keeps the whole grid
        record_config(out, folder)
    jobs, todo, cells_total, cells_before = plan.jobs, plan.todo, plan.cells_total, plan.cells_done
    log.info("%d cells in the grid, %d already done; running %s", cells_total, cells_before, count_of(len(todo), "job"))
    by_key = {j.key: j for j in todo}
    outcomes = run_claimed_jobs(
        execute_job,
        todo,
        [j.key for j in todo],
        lock_of=lambda key: claim_path(out, by_key[key].claim_key),
        is_done=lambda key: by_key[key].settle(),
        what="bench job",
        executor=executor,
        workers=workers,
        address=address,
        num_cpus=config.num_cpus,
        num_gpus=config.num_gpus,
        desc="bench jobs",
    )
    ran = [o for o in outcomes if o.ok and not (o.value or {}).get("skipped")]
    # a row waited for another row of this run doing its computation (process/Ray workers), then copied it
    ran_here = {by_key[o.key].claim_key for o in ran}
    waited = [o for o in outcomes if is_elsewhere(o)]
    same_here = sum(1 for o in waited if by_key[o.key].claim_key in ran_here)
    run = BenchRun(
        out_dir=out,
        jobs_total=len(jobs),
        jobs_run=len(ran),
        jobs_elsewhere=len(waited) - same_here,
        jobs_same=same_here + sum(1 for o in outcomes if o.ok and (o.value or {}).get("same_as_another_row")),
        cells_total=cells_total,
        cells_done_before=cells_before,
        failures=[o for o in outcomes if not o.ok],
    )
    if report:
        with exclusive(out / GRID_LOCK):  # the grid as it is now: a bench started beside this one added its rows
            folder = folder_config(out, config, say=False)
        run.report = write_report(folder, out, failures=run.failures)
    return run


#: the lists a run may take a part of, as `--methods`, `--seeds`, `--densities`, `--models`, `--datasets` do
_PARTS = ("models", "datasets", "methods", "densities", "seeds")


#: held while the folder's bench.yaml is read, merged and written
GRID_LOCK = ".bench-grid.lock"


def settings_unlike_record(out: Path, config: BenchConfig) -> list[str]:
    """The settings outside the grid's parts that its cells depend on (recipe, data sizes…) where ``config`` differs from
    the bench ``out`` records, each as ``name`` (``train.epochs``: a nested one by its flag's path); none when it
    records none or one this code cannot read. A report of such a config is another bench's, under this folder's
    bench.yaml (review: `--report-only --config OTHER` replaced the folder's report with a grid of "–")."""
    return [name for name, _, _ in _recipe_changes(out, config)]


def _recorded_grid(out: Path) -> BenchConfig | None:
    """The grid ``out``'s bench.yaml records; None where there is none or this code cannot read it. One cut
    short is refused: it read as another grid, and was replaced or reported as one (hunt, review)."""
    path = out / CONFIG_FILE
    if not path.exists():
        return None
    check_record_whole(path)
    try:
        data = load_yaml(path)
        return respelled(from_dict(BenchConfig, data, where=str(path)), data)  # a record written before record_dict
    except AutosparseError:
        return None


def _recipe_changes(out: Path, config: BenchConfig) -> list[tuple[str, Any, Any]]:
    """(setting, this config's value, the record's) for each setting :func:`settings_unlike_record` names."""
    recorded = _recorded_grid(out)
    if recorded is None:
        return []
    mine, theirs = _recipe(config), _recipe(recorded)
    changes = []
    for k in sorted(set(mine) | set(theirs)):
        a, b = mine.get(k), theirs.get(k)
        if isinstance(a, dict) and isinstance(b, dict):  # train: one name per field, as its flags spell it
            changes += [(f"{k}.{f}", a.get(f), b.get(f)) for f in sorted(set(a) | set(b)) if a.get(f) != b.get(f)]
        elif a != b:
            changes.append((k, a, b))
    return changes


def _recipe(config: BenchConfig) -> dict[str, Any]:
    """The settings of ``config`` its cells depend on, beyond the grid's parts."""
    d = {k: v for k, v in to_dict(config).items() if k not in (*_PARTS, *_PRESENTATION)}
    # threads and test batches change no cell (their hashes leave them out)
    d["train"] = {k: v for k, v in d["train"].items() if k not in COSMETIC_TRAIN_FIELDS}
    return d


def recipe_changes(out: Path, config: BenchConfig, names: Mapping[str, str] | None = None) -> str:
    """How the recipe ``out``'s bench.yaml records differs from ``config``'s, in words ('' where it does not);
    a setting is named as ``names`` says where it does (the demo's own flags)."""
    names = names or {}
    changes = _recipe_changes(out, config)
    return ", ".join(f"{names.get(k, k)} {_short(b)} there, {_short(a)} here" for k, a, b in changes)


def refuse_another_bench(out: Path, config: BenchConfig) -> None:
    """Refuse a run of ``config`` into ``out`` when the folder records a bench of another recipe.

    Why: such a run replaced bench.yaml and the report with its own grid, so the folder's earlier cells
    stayed in cells/ with nothing mentioning them, and ``--report-only`` could no longer show them.
    """
    said = recipe_changes(out, config)
    if not said:
        return
    raise ConfigError(
        f"--out {out} holds another bench: its {CONFIG_FILE} records another recipe ({said}), and this run would "
        f"replace that record and its report, leaving its cells unreported; run this grid into another --out "
        f"(the same recipe grows the folder's grid)"
    )


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "…"


#: settings no cell depends on: a report under another title, gap row or cluster request is this bench's
_PRESENTATION = ("name", "gap_to", "num_cpus", "num_gpus", "data_root", "download")


def folder_config(out: Path, config: BenchConfig, *, say: bool = True) -> BenchConfig:
    """The grid ``out`` records once this run's ``config`` joins it: the union of the two — the recorded
    entries first, in their order, then the new ones — with this run's title, gap row, cluster request,
    data root and cosmetic training fields (the ones no cell depends on).

    Why: a run of some rows (``--methods snip`` while a new method is still being written) rewrote
    bench.yaml and the report with those rows alone, so the folder forgot its grid, and the report's
    verdict picked the best classic method among the rows of that run only. A grid is never shrunk
    by a run: deleting bench.yaml does that (the cells stay). A ``config`` of another recipe is
    another bench, refused (:func:`refuse_another_bench`): it replaced the record, and the folder's
    cells went unreported.
    """
    path = out / CONFIG_FILE
    recorded = _recorded_grid(out)
    if recorded is None:
        return config  # none yet, or a record this code cannot read: replaced, as before
    refuse_another_bench(out, config)
    mine, theirs = record_dict(config), record_dict(recorded)  # read back by from_dict below: its own ids
    merged = dict(mine)
    for k in _PARTS:
        merged[k] = _union(k, theirs[k], mine[k])
    if merged == mine:
        return config  # this run's grid holds the record's (or renames entries of it) and adds none
    try:
        union = from_dict(BenchConfig, merged, where=str(path)).validate()
    except AutosparseError as exc:  # e.g. two rows of one label: the new grid replaces the record, as before
        if say:  # said: the folder forgot the rest of its grid without a word (review)
            log.warning(
                "%s and this run's grid do not join (%s); the record and the report become this run's grid (the "
                "cells stay; rerun the recorded grid to report it again)",
                path,
                str(exc).splitlines()[0],
            )
        return config
    if say:
        log.warning(
            "%s records a larger grid than this run's; the record and the report keep all of it (delete that "
            "file to shrink the grid; the cells stay)",
            path,
        )
    return union


def _union(part: str, recorded: list[Any], new: list[Any]) -> list[Any]:
    """The recorded entries in their order, each replaced by this run's entry of the same computation
    (a row or model relabelled, a dataset respelled), then this run's other entries.

    Why: a relabelled row was kept under both labels, with the same numbers, forever.
    """

    def same(v: Any) -> str:
        if part == "methods" and isinstance(v, dict):
            v = {"method": v.get("method"), "hparams": v.get("hparams")}
        elif part == "models" and isinstance(v, dict):
            v = {"model": v.get("model"), "model_kwargs": v.get("model_kwargs")}
        elif part == "datasets" and isinstance(v, str):
            with contextlib.suppress(AutosparseError):  # an unknown name is refused by validate()
                v = canonical_dataset(v)
        return json.dumps(v, sort_keys=True)

    mine: dict[str, list[int]] = {}
    for i, v in enumerate(new):
        mine.setdefault(same(v), []).append(i)
    counts: dict[str, int] = {}
    for v in recorded:
        counts[same(v)] = counts.get(same(v), 0) + 1
    out, used = [], set()
    for v in recorded:  # a rename only where one recorded entry and one new entry do that computation
        ours = mine.get(same(v), [])
        if len(ours) == 1 and counts[same(v)] == 1:
            out.append(new[ours[0]])
            used.add(ours[0])
        else:
            out.append(v)
    have = {json.dumps(v, sort_keys=True) for v in out}
    return [*out, *(v for i, v in enumerate(new) if i not in used and json.dumps(v, sort_keys=True) not in have)]


def record_config(out: Path, config: BenchConfig) -> None:
    """Write the folder's bench.yaml through a temporary name: another bench process may be reading it."""
    write_text(out / CONFIG_FILE, record_text(dump_yaml(config, record=True)))
