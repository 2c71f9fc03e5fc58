"""The demo's three steps, each resumable, each reporting what it does and how long it has taken.

1. IRP source runs into a store: labels of what IMP keeps, on a few source models.
2. The demo's own scorer, trained on exactly those runs.
3. The held-out model pruned by ``autos`` (the demo's scorer and the shipped default), the
   baselines and IMP, every mask trained with the same recipe, the table printed.

Why every step prints: the demo is the first thing a user runs, and minutes of silence look
like a hang. Why every step resumes: the store skips complete runs, the scorer is kept while its
key (its runs and config) is unchanged, and the bench never recomputes a finished cell — so a
rerun after a kill, or just to see the table again, costs seconds, and :class:`DemoResult` says
what was computed and what was reused.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosparse.bench.config import IMP, BenchConfig, MethodSpec
from autosparse.bench.runner import recipe_changes, run_bench
from autosparse.core.claims import claim
from autosparse.core.claims import wait_for_release as wait_for_claims
from autosparse.core.config_record import config_hash, to_dict
from autosparse.core.errors import AutosparseError, ConfigError
from autosparse.core.executors import ExecutorConfig, JobOutcome
from autosparse.core.folders import make_output_dir, write_text
from autosparse.core.layers import prunable_layers
from autosparse.core.text import count_of
from autosparse.data import absolute_root, dataset_info
from autosparse.demo.config import DemoConfig, Setting
from autosparse.demo.data import DataChoice, choose_dataset
from autosparse.demo.summary import AUTOS_LABEL, SHIPPED_LABEL, describe, model_sizes
from autosparse.features import FEATURE_NAMES, SCHEMA_VERSION
from autosparse.pruners.registry import make_pruner
from autosparse.scorer.checkpoint import LOCK_FILE as SCORER_LOCK
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.training import train_scorer
from autosparse.sources import RunJob, RunSpec, execute_run, held_id, same_recipe
from autosparse.store import FeatureStore
from autosparse.store.jobs import run_store_jobs
from autosparse.store.layout import enclosing_store
from autosparse.store.writer import store_exists
from autosparse.training.irp import IRPConfig
from autosparse.training.trainer import TrainConfig, set_threads

log = logging.getLogger(__name__)

STEPS = 3


class Progress:
    """``[2/3 01:05] what is happening``: the step, the time since the demo started, the news."""

    def __init__(self, say: Callable[[str], None] = print) -> None:
        self.say = say
        self.start = time.perf_counter()
        self.current = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def clock(self) -> str:
        s = int(self.elapsed())
        return f"{s // 60:02d}:{s % 60:02d}"

    def step(self, i: int, text: str) -> None:
        self.current = i
        self.say(f"[{i}/{STEPS} {self.clock()}] {text}")

    def note(self, text: str) -> None:
        self.say(f"[{self.current}/{STEPS} {self.clock()}]   {text}")


@dataclass
class DemoResult:
    """What a demo call printed last and what it computed (a rerun computes nothing)."""

    text: str  # the table with its setting, reading, plot and report paths
    choice: DataChoice
    runs_generated: int  # source runs trained by this call (the others were in the store)
    scorer_trained: bool  # False: the scorer of the same runs and config was reused
    bench_jobs_run: int  # bench jobs computed by this call (IMP is one job for all densities)
    seconds: float
    records: list[dict[str, Any]] = field(default_factory=list)  # the bench cells, as in results.json
    failed_jobs: int = 0  # bench jobs that failed again in the last pass: the command then exits 1

    def __str__(self) -> str:
        return self.text

    def final_line(self) -> str:
        """The total time, and what was computed rather than reused."""
        fresh = [
            f"{self.runs_generated} source run{'s' if self.runs_generated != 1 else ''}" if self.runs_generated else "",
            "the scorer" if self.scorer_trained else "",
            f"{self.bench_jobs_run} bench job{'s' if self.bench_jobs_run != 1 else ''}" if self.bench_jobs_run else "",
        ]
        done = ", ".join(f for f in fresh if f) or "nothing (every step reused)"
        return f"demo done in {_minutes(self.seconds)} total; computed: {done}"


def _minutes(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d} min ({seconds:.0f} s)"


def source_specs(setting: Setting, dataset: str, data_root: str | None) -> list[RunSpec]:
    """Step 1's IRP runs: one per source model, seed 0."""
    # epochs as a float, as YAML, a flag and a folder's recorded grid read it back: 4 and 4.0 named different
    # runs and cells, so a rerun with --bench-epochs 4 (or after --baselines snip) recomputed them all (helper)
    train_gen = TrainConfig(epochs=float(setting.gen_epochs), num_threads=setting.num_threads)
    irp = IRPConfig(rounds=setting.irp_rounds, prune_fraction=setting.irp_prune_fraction)
    return [
        RunSpec(m, dataset, 0, irp, train_gen, setting.n_train, setting.n_test, data_root)
        for m in setting.source_models
    ]


def scorer_key(run_ids: list[str], scorer_cfg: ScorerConfig) -> str:
    """The demo's scorer is a function of its runs and config; its folder is named by this hash, so a
    changed setting trains a new scorer (and new ``autos`` cells) instead of reusing a stale one."""
    return config_hash({"gen": list(run_ids), "scorer": to_dict(scorer_cfg)})


def _stored_ids(store: Path, specs: list[RunSpec]) -> list[str | None]:
    """Each source run's id where the store holds it complete: its own, an earlier spelling's, or that of
    the run written with other threads (:attr:`RunSpec.recipe_id`); None for a run still to generate.

    Why: `--num-threads 2` regenerated every source run (the thread count is in the run id) and then
    trained the scorer again on the copies (helper).
    """
    if not store_exists(store):
        return [None] * len(specs)
    fs = FeatureStore(store, schema_version=SCHEMA_VERSION, feature_names=list(FEATURE_NAMES), create=False)
    found = [held_id(fs, spec) for spec in specs]
    alike = same_recipe(fs, (spec for f, spec in zip(found, specs, strict=True) if f is None))
    return [f or alike.get(spec.run_id) for f, spec in zip(found, specs, strict=True)]


def bench_config(cfg: DemoConfig, setting: Setting, choice: DataChoice, scorer_dir: Path) -> BenchConfig:
    """Step 3's grid: the held-out model pruned by the demo's scorer, the shipped one and the baselines."""
    methods = [MethodSpec("autos", {"scorer": str(scorer_dir.resolve())}, label=AUTOS_LABEL)]
    if cfg.shipped_scorer:
        methods.append(MethodSpec("autos", {"scorer": cfg.shipped_scorer}, label=SHIPPED_LABEL))
    methods += [MethodSpec(m) for m in cfg.baselines] + [MethodSpec(IMP)]
    return BenchConfig(
        name="demo",
        models=[setting.heldout()],
        datasets=[choice.dataset],
        methods=methods,
        densities=list(setting.densities),
        seeds=list(setting.seeds),
        train=TrainConfig(epochs=float(setting.bench_epochs), num_threads=setting.num_threads),  # as source_specs
        n_train=setting.n_train,
        n_test=setting.n_test,
        data_root=choice.data_root,
    )


def run_demo(
    cfg: DemoConfig | None = None,
    *,
    executor: str | ExecutorConfig = "local",
    choice: DataChoice | None = None,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run (or resume) the demo, printing its progress, the table and the total time through ``say``.

    ``executor`` runs the bench; ``choice`` skips looking for the data (tests name it).
    """
    cfg = cfg or DemoConfig()
    where = executor if isinstance(executor, ExecutorConfig) else ExecutorConfig(executor)
    progress = Progress(say)
    if choice is None:
        choice = choose_dataset(cfg.dataset, cfg.data_root, fetch=cfg.fetch)
    say(f"demo data: {choice.source}")
    setting = cfg.setting(choice.dataset)
    out = Path(cfg.out) / choice.dataset.replace(":", "-")  # one store, scorer and bench per dataset
    specs = source_specs(setting, choice.dataset, choice.data_root)
    store = (out / "store.zarr").absolute()
    if setting.scorer_steps < 1:  # the message names the demo's option, not ScorerConfig's field
        raise ConfigError(f"--scorer-steps must be >= 1, got {setting.scorer_steps}")
    scorer_cfg = ScorerConfig(steps=setting.scorer_steps, eval_every=max(1, setting.scorer_steps // 6))
    stored = _stored_ids(store, specs)
    run_ids = [found or spec.run_id for found, spec in zip(stored, specs, strict=True)]
    key = scorer_key(run_ids, scorer_cfg)
    scorer_dir = out / f"scorer-{key}"
    bench = bench_config(cfg, setting, choice, scorer_dir)
    _check_bench(bench, cfg)  # before anything is made or trained
    # a rerun with another --bench-epochs: refused before steps 1-2, named by the demo's options (review)
    changed = recipe_changes(out / "bench", bench, names=_DEMO_FLAGS)
    if changed:  # in the demo's words: the bench's own message named a --out the demo does not have (review)
        raise ConfigError(
            f"--out {cfg.out} holds this demo's bench of another recipe ({changed}): rerun with the options that "
            f"made it, give another --out, or delete {out / 'bench'} to run this recipe there"
        )
    info = dataset_info(choice.dataset)
    held_out = _layer_shapes(bench.models[0].build(info, seed=0))
    for spec in specs:  # a misspelt source model failed only after the runs before it had trained (helper)
        if _layer_shapes(spec.model.build(info, seed=0)) == held_out:  # it was printed "(held out)" (helper)
            raise ConfigError(
                f"the held-out model {bench.models[0].label()} has the layers of source model {spec.model.label()}, "
                "so the scorer would have seen it: give another --heldout-model, or leave it out of --source-models"
            )
    # a store made its folders inside it, then named a --store the demo has no option for (helper)
    if enclosing_store(out, itself=True) is not None:
        raise ConfigError(f"--out {cfg.out} is, or lies in, a feature store; give a folder outside it")
    out = make_output_dir(out)
    progress.step(
        1,
        f"IRP source runs: {len(specs)} models on {choice.dataset}, {setting.irp_rounds} rounds x "
        f"{count_of(setting.gen_epochs, 'epoch')} each -> {store}",
    )
    todo = [spec for found, spec in zip(stored, specs, strict=True) if found is None]
    if len(todo) < len(specs):  # not handed to a pool only to be found complete there ("done by another process")
        progress.note(f"{len(specs) - len(todo)} of {len(specs)} runs reused (complete in the store)")
    generated = _source_runs(todo, store, where, progress) if todo else 0

    trained = _demo_scorer(store, run_ids, scorer_dir, scorer_cfg, key, setting, progress)

    bench_dir = out / "bench"
    n_cells = len(bench.densities) * len(bench.seeds)
    progress.step(
        3,
        f"bench: {bench.models[0].label()} (held out) pruned by {len(bench.methods) - 1} methods at "
        f"{len(bench.densities)} densities + IMP, {n_cells} masks each trained {count_of(setting.bench_epochs, 'epoch')} "
        f"-> {bench_dir}",
    )
    jobs_run = _bench_jobs(bench, bench_dir, where, progress, n_cells)
    final = run_bench(bench, bench_dir, **where.options())  # every cell is there: this only writes the report
    if final.report is None:  # pragma: no cover - run_bench writes the report unless told not to
        raise RuntimeError("the bench wrote no report")
    text = describe(
        bench,
        final.report,
        source="MNIST-1D fallback, generated locally (why: the first line above)" if choice.fallback else choice.source,
        n_sources=len(specs),
        shipped=cfg.shipped_scorer,
        sizes=model_sizes(bench.models[0], choice.dataset),
    )
    result = DemoResult(
        text, choice, generated, trained, jobs_run, progress.elapsed(), final.report.records, len(final.failures)
    )
    say(text)
    say(result.final_line())
    return result


def _demo_scorer(
    store: Path,
    run_ids: list[str],
    scorer_dir: Path,
    scorer_cfg: ScorerConfig,
    key: str,
    setting: Setting,
    progress: Progress,
) -> bool:
    """Train the demo's scorer, or reuse the one its folder's stamp names; return whether it trained.

    The folder's claim is held from reading the stamp to writing it (``train_scorer`` re-enters it in
    this thread): a second demo into this --out failed on the busy folder, or, waking between the
    save and the stamp, trained it again (review). It waits for the first, then reads the stamp.
    """
    stamp, lock = scorer_dir / "demo_config.json", scorer_dir / SCORER_LOCK
    while True:
        with claim(lock) as mine:
            if mine:
                if _stamp_key(stamp) == key:
                    progress.step(2, f"scorer: reused {scorer_dir} (same runs and config)")
                    return False
                progress.step(
                    2,
                    f"scorer: training {setting.scorer_steps} ranker steps on the {len(run_ids)} runs -> {scorer_dir}",
                )
                set_threads(setting.num_threads)  # on a busy machine a second thread made this 13x slower
                train_scorer(
                    store,
                    holdout=None,
                    train_on="run_id=" + ",".join(run_ids),  # this setting's runs, not older ones
                    out=scorer_dir,
                    config=scorer_cfg,
                    name="demo_scorer",
                    command="autosparse demo",
                    overwrite=True,  # its own folder: a run killed before the stamp left a scorer of these runs
                )
                write_text(stamp, json.dumps({"key": key}))  # whole: a half-written stamp failed every rerun
                return True
        progress.note("the scorer is being trained by another process: waiting for it")
        wait_for_claims({"scorer": lock}, what="scorer training")


#: the bench keys the demo sets from its own options, as a user typed them
_DEMO_FLAGS = {
    "train.epochs": "--bench-epochs",
    "n_train": "--n-train",
    "n_test": "--n-test",
}


def _stamp_key(stamp: Path) -> str | None:
    """The key the scorer folder's stamp names; None where there is none or it cannot be read (then the
    scorer is trained again: a stamp left empty by a full disk failed every later demo; helper)."""
    try:
        key = json.loads(stamp.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None
    return key if isinstance(key, str) else None


def _layer_shapes(model: Any) -> list[tuple[int, ...]]:
    """What makes two models one architecture to the scorer: their prunable layers' shapes, in order."""
    return [tuple(layer.parameter.shape) for layer in prunable_layers(model)]


def _check_bench(bench: BenchConfig, cfg: DemoConfig) -> None:
    """Step 3's grid checked before step 1: a misspelt baseline, held-out model or option, a density
    out of range or a missing shipped scorer surfaced only after the minutes of IRP and scorer training.
    The demo's own scorer is not there yet; every other row is preflighted as the bench will."""
    bench.validate()
    bench.check_models()
    if cfg.shipped_scorer:
        make_pruner("autos", {"scorer": cfg.shipped_scorer}).config.preflight()


def _source_runs(specs: list[RunSpec], store: Path, where: ExecutorConfig, progress: Progress) -> int:
    """Generate (or reuse) the source runs; return how many were generated now.

    Locally one after another, saying which; on a pool (``make demo`` passes ``--executor
    process``: one worker per core, one torch thread each) all at once — on the idle 2-core
    machine this step fell from 69 to 40 s, and on a busy one a single thread per run is what
    keeps it sane. A run another process is generating (a second demo into this --out) is waited
    for, as ``gen`` waits (:func:`~autosparse.store.jobs.run_store_jobs`): it was reported "reused"
    and the scorer trained without it, under a key naming all the runs (helper).
    """
    jobs = [RunJob(spec, str(store), str(store) + ".work", absolute_root(spec.data_root)) for spec in specs]
    keys = [s.run_id for s in specs]
    if where.executor == "local":
        generated, held = 0, []
        for i, (spec, job) in enumerate(zip(specs, jobs, strict=True), 1):
            progress.note(f"run {i}/{len(specs)}: {spec.model.label()}")
            outcome = execute_run(job)
            if outcome.get("elsewhere"):
                held.append(i - 1)
            elif outcome.get("skipped"):
                progress.note(f"run {i}/{len(specs)}: reused (complete in the store)")
            else:
                generated += 1
        if not held:
            return generated
        progress.note(f"{len(held)} run(s) being generated by another process: waiting for them")
        return generated + _generated(_store_jobs([jobs[i] for i in held], [keys[i] for i in held], store, where))
    progress.note(f"{len(specs)} runs on {where.executor} workers: {', '.join(s.model.label() for s in specs)}")
    generated = _generated(_store_jobs(jobs, keys, store, where))
    if generated < len(specs):
        progress.note(f"{len(specs) - generated} of {len(specs)} runs reused (complete in the store)")
    return generated


def _store_jobs(jobs: list[RunJob], keys: list[str], store: Path, where: ExecutorConfig) -> list[JobOutcome]:
    """The runs through ``gen``'s own mechanism (runs held elsewhere waited for, or finished here if
    their holder let go unfinished); a failure raised in one line."""
    outcomes = run_store_jobs(execute_run, jobs, keys, store, desc="IRP source runs", **where.options())
    failed = [o for o in outcomes if not o.ok]
    if failed:
        first = (failed[0].error or "").strip().splitlines()[:1] or ["no message"]
        raise AutosparseError(
            f"{len(failed)} source run(s) failed, first {failed[0].key}: {first[0]} — rerun `autosparse demo` to "
            "resume (finished runs are kept), or run with --executor local to see the traceback"
        )
    return outcomes


def _generated(outcomes: list[JobOutcome]) -> int:
    """How many of the runs were generated here (not found complete, not completed by another process)."""
    return sum(not (o.value or {}).get("skipped") for o in outcomes)


def _bench_jobs(bench: BenchConfig, bench_dir: Path, where: ExecutorConfig, progress: Progress, n_cells: int) -> int:
    """Train every missing cell; return how many trained now.

    Locally one method at a time, so every method shows up as it finishes; on a pool the whole
    grid at once, or the workers would idle at the end of each method's few cells.
    """
    pooled = where.executor != "local"
    groups: list[list[str] | None] = [None] if pooled else [[t] for t in bench.method_titles()]
    jobs_run = 0
    for methods in groups:
        if methods is None:
            title = "every row"
            progress.note(f"{len(bench.method_titles())} rows at once on {where.executor} workers")
        else:
            title = methods[0]
            progress.note(
                "IMP: one IRP run per seed through every density" if title == IMP else f"{title}: {n_cells} masks"
            )
        run = run_bench(bench, bench_dir, methods=methods, report=False, **where.options())
        jobs_run += run.jobs_run
        if run.jobs_run == 0 and not run.failures:
            progress.note(f"{title}: reused (every cell finished before)")
        for failure in run.failures:
            last = (failure.error or "").strip().splitlines()[-1:] or ["no message"]
            progress.note(f"{title}: FAILED {failure.key}: {last[0]}")
    return jobs_run
