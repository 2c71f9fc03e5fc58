"""The main job on an embedded default, end to end on a laptop in minutes.

1. Generate a small IRP store on a few source MLPs (Fashion-MNIST if the machine has it, else
   MNIST-1D, which is generated locally — nothing is downloaded).
2. Train the learned scorer on it.
3. Prune a *held-out* architecture (LeNet-300-100, not among the sources) with ``autos`` and the
   baselines at a few extreme sparsities, train every mask with the same recipe, and print the
   table with IMP (from an IRP run on the held-out model itself) as the reference.

Every step is resumable: the store skips complete runs, the scorer is reused when its config is
unchanged, and the bench never recomputes a finished cell, so a rerun is near-instant.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from autosparse.bench.config import IMP, BenchConfig, MethodSpec
from autosparse.bench.runner import run_bench
from autosparse.core.config import config_hash, to_dict
from autosparse.core.executors import ExecutorConfig
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.training import train_scorer
from autosparse.sources import RunJob, RunSpec, execute_run
from autosparse.task import ModelSpec
from autosparse.training.irp import IRPConfig
from autosparse.training.trainer import TrainConfig

log = logging.getLogger(__name__)

FASHION_MNIST_FILE = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")


@dataclass
class DemoConfig:
    """The demo's sizes: every step's budget in one place (``autosparse demo --help`` lists them)."""

    out: str = "demo_out"  # folder for the store, the scorer and the bench (a rerun reuses what is there)
    dataset: str = "auto"  # auto = fashion-mnist when installed, else mnist1d (generated locally)
    n_train: int = 12000  # training images per run (Fashion-MNIST subset; MNIST-1D uses all of it)
    n_test: int = 5000  # test images per run (Fashion-MNIST subset)
    densities: tuple[float, ...] = (0.02, 0.01, 0.005)  # densities the held-out model is pruned to
    seeds: tuple[int, ...] = (0,)  # bench seeds (initial weights, pruning batch, training order)
    source_models: list[ModelSpec] = field(
        default_factory=lambda: [
            ModelSpec("mlp", {"widths": [500, 150]}),
            ModelSpec("mlp", {"widths": [200, 200, 200]}),
            ModelSpec("mlp", {"widths": [1000]}),
            ModelSpec("mlp", {"widths": [600, 300, 100]}),
        ]
    )
    """models whose IRP runs the demo's scorer learns from: names or JSON, as the models of a gen config"""
    heldout_model: str = "lenet_300_100"  # the architecture the scorer never sees, pruned and compared
    irp_rounds: int = 8  # IRP rounds per source run (50% pruned each: last density 0.4%)
    gen_epochs: float = 2  # training epochs per IRP round of the source runs
    bench_epochs: float = 4  # training epochs of every pruned held-out model
    scorer_steps: int = 1500  # ranker training steps of the demo's scorer
    baselines: tuple[str, ...] = ("random", "snip", "synflow")  # classic methods compared with autos and IMP
    shipped_scorer: str = "autos_mlp_fmnist"
    """also prune with this shipped scorer (trained once on 16 Fashion-MNIST runs; "" = skip), next to
    the demo's own small scorer: what a user gets without generating anything"""


def resolve_dataset(name: str) -> str:
    if name != "auto":
        return name
    return "fashion-mnist" if FASHION_MNIST_FILE.exists() else "mnist1d"


def _subset(cfg: DemoConfig, dataset: str) -> tuple[int | None, int | None]:
    # MNIST-1D is small already (4000 / 1000)
    return (None, None) if dataset == "mnist1d" else (cfg.n_train, cfg.n_test)


def source_specs(cfg: DemoConfig, dataset: str) -> list[RunSpec]:
    """Step 1's IRP runs: one per source model, seed 0."""
    train_gen = TrainConfig(epochs=cfg.gen_epochs, num_threads=0)
    irp = IRPConfig(rounds=cfg.irp_rounds, prune_fraction=0.5)
    return [RunSpec(m, dataset, 0, irp, train_gen, *_subset(cfg, dataset)) for m in cfg.source_models]


def bench_config(cfg: DemoConfig, dataset: str, scorer_dir: Path) -> BenchConfig:
    """Step 3's grid: the held-out model pruned by the demo's scorer, the shipped one and the baselines."""
    methods = [MethodSpec("autos", {"scorer": str(scorer_dir.resolve())}, label="autos")]
    if cfg.shipped_scorer:
        methods.append(MethodSpec("autos", {"scorer": cfg.shipped_scorer}, label="autos (shipped)"))
    methods += [MethodSpec(m) for m in cfg.baselines] + [MethodSpec(IMP)]
    n_train, n_test = _subset(cfg, dataset)
    return BenchConfig(
        name="demo",
        models=[ModelSpec(cfg.heldout_model)],
        datasets=[dataset],
        methods=methods,
        densities=list(cfg.densities),
        seeds=list(cfg.seeds),
        train=TrainConfig(epochs=cfg.bench_epochs),
        n_train=n_train,
        n_test=n_test,
    )


def run_demo(cfg: DemoConfig | None = None, *, executor: str | ExecutorConfig = "local") -> str:
    """Run (or resume) the demo and return the comparison table (markdown); ``executor`` runs the bench."""
    cfg = cfg or DemoConfig()
    where = executor if isinstance(executor, ExecutorConfig) else ExecutorConfig(executor)
    dataset = resolve_dataset(cfg.dataset)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = source_specs(cfg, dataset)
    store = (out / "store.zarr").absolute()
    log.info("step 1/3: IRP labels for %d source models on %s", len(cfg.source_models), dataset)
    print(f"[1/3] IRP source runs on {dataset} -> {store}", flush=True)
    for spec in specs:  # one after another: each run already uses every core
        execute_run(RunJob(spec, str(store), str(store) + ".work"))

    scorer_cfg = ScorerConfig(steps=cfg.scorer_steps, eval_every=max(1, cfg.scorer_steps // 6))
    scorer_dir = out / "scorer"
    stamp = scorer_dir / "demo_config.json"
    key = config_hash({"gen": [s.run_id for s in specs], "scorer": to_dict(scorer_cfg)})
    print(f"[2/3] scorer -> {scorer_dir}", flush=True)
    if not (stamp.exists() and json.loads(stamp.read_text()).get("key") == key):
        train_scorer(
            store, holdout=None, out=scorer_dir, config=scorer_cfg, name="demo_scorer", command="autosparse demo"
        )
        stamp.write_text(json.dumps({"key": key}))

    bench = bench_config(cfg, dataset, scorer_dir)
    print(
        f"[3/3] {cfg.heldout_model} (held out) pruned by autos and baselines, trained, compared -> {out / 'bench'}",
        flush=True,
    )
    run = run_bench(bench, out / "bench", **where.options())
    report = run.report
    table = report.tables if report is not None else ""
    return f"{table}\n\nreport: {out / 'bench' / 'report.md'}"
