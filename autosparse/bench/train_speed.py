"""What training under a mask costs against dense training, per epoch, measured the way it is paid.

Why a benchmark of its own: every IRP round and every bench cell trains under a mask, so a
per-step overhead of masking is paid thousands of times. Masked training zeroes pruned weights
once and masks their gradients after each backward (:mod:`autosparse.training.masking`); torch's
pruning hooks, the earlier way, recompute ``weight_orig * weight_mask`` in every forward. This
times one epoch of :func:`autosparse.training.trainer.train` per variant — ``dense`` (no mask),
``masked`` (the trainer's masks) and ``hooks`` (masks attached with torch's hooks, trained as a
dense model) — on a freshly built model each time, the variants interleaved run by run so a
change in machine load hits them alike, and reports medians and ratios to dense.

Only the sparsity pattern's shape matters for the cost, so the mask is a random one; the data
are fake unless the config names a real dataset, and the test set is one sample per class so
the final evaluation weighs nothing.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from autosparse.bench.outputs import TRAIN_SPEED_JSON as RESULTS_FILE
from autosparse.bench.report import format_seconds, markdown_table
from autosparse.bench.speed import measuring
from autosparse.core.config import from_dict, load_yaml
from autosparse.core.config_record import to_dict
from autosparse.core.errors import ConfigError, check_density
from autosparse.core.folders import write_text
from autosparse.core.text import count_of, markdown_literal
from autosparse.data import FAKE_PREFIX, check_subset_sizes, dataset_info
from autosparse.models import model_info
from autosparse.pruners import prune
from autosparse.task import DataSpec, ModelSpec, Task
from autosparse.training.trainer import TrainConfig, check_device_name, set_threads, train

log = logging.getLogger(__name__)

VARIANTS = ("dense", "masked", "hooks")
REPORT_FILE = "report.md"


@dataclass
class TrainSpeedModel(ModelSpec):
    """A model of the training-speed bench, on its own data and epoch size."""

    dataset: str = ""  # default: the config's
    n_train: int = 0  # examples per epoch (a subset, or fake data of that size); 0 = the whole training set


def _default_models() -> list[TrainSpeedModel]:
    return [
        TrainSpeedModel("lenet_300_100", dataset="fake:fashion-mnist", n_train=60000),
        TrainSpeedModel("resnet20", n_train=5000),
    ]


@dataclass
class TrainSpeedConfig:
    """The YAML of ``autosparse bench train_speed`` (``kind: train_speed``)."""

    kind: Literal["train_speed"] = "train_speed"
    name: str = ""
    models: list[TrainSpeedModel] = field(default_factory=_default_models)
    dataset: str = "fake:cifar10"
    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    density: float = 0.01
    runs: int = 5  # the median over runs is reported; the variants alternate within each run
    epochs: float = 1.0
    batch_size: int = 128
    seed: int = 0
    num_threads: int = 1  # torch threads; 1 is steadier on a shared machine, 0 = OMP_NUM_THREADS, else every core
    device: str = "cpu"

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainSpeedConfig:
        data = dict(load_yaml(path))
        if data.get("kind") != "train_speed":
            raise ConfigError(f"{path} is not a training-speed bench (kind: {data.get('kind')}); use kind: train_speed")
        if "models" in data:
            data["models"] = [{"model": m} if isinstance(m, str) else m for m in data["models"] or []]
        return from_dict(cls, data, where=str(path)).validate()

    def validate(self) -> TrainSpeedConfig:
        check_density(self.density)
        if not self.models:
            raise ConfigError("a training-speed bench needs at least one model")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConfigError(f"unknown variants {unknown}; use some of {', '.join(VARIANTS)}")
        if self.runs < 1 or self.epochs <= 0:
            raise ConfigError("runs must be >= 1 and epochs > 0")
        if self.batch_size < 1 or self.num_threads < 0:
            raise ConfigError(
                f"batch_size must be >= 1 and num_threads >= 0 (0: OMP_NUM_THREADS, else every core), got {self.batch_size} and "
                f"{self.num_threads}"
            )
        check_device_name(self.device)
        for m in self.models:
            model_info(m.model)
            # built on its data's shape (no data loaded): a bad option or a model that cannot take the data
            # failed every measurement of it, after --check had called the config valid
            m.build(dataset_info(m.dataset or self.dataset), seed=0)
            self.task(m)  # fake data without n_train failed only when that model's turn came
            try:  # a negative n_train, or more than the dataset holds, failed only once its data had loaded
                check_subset_sizes(m.dataset or self.dataset, m.n_train or None, None)
            except ConfigError as e:
                raise ConfigError(f"{m.label()}: {e}") from None
        return self

    def task(self, model: TrainSpeedModel) -> Task:
        name = model.dataset or self.dataset
        classes = dataset_info(name).num_classes
        n_train = model.n_train or None
        if name.lower().startswith(FAKE_PREFIX) and n_train is None:
            raise ConfigError(f"{model.label()}: fake data needs n_train (the epoch size)")
        return Task(model, DataSpec(name, n_train, classes, data_seed=self.seed))


def time_epoch(config: TrainSpeedConfig, task: Task, dataset: Any, variant: str) -> float:
    """Seconds of one :func:`train` call of ``variant`` on a freshly built model (mask included)."""
    model = task.build_model(dataset, config.seed)
    recipe = TrainConfig(
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        num_threads=config.num_threads,
        device=config.device,
    )
    masks = None
    if variant != "dense":
        masks = prune(model, "random", density=config.density, seed=config.seed)
        if variant == "hooks":
            masks.apply(model)  # torch's weight_orig * weight_mask in every forward
            masks = None
    start = time.perf_counter()
    train(model, dataset, recipe, masks=masks, desc=variant)
    return time.perf_counter() - start


def run_train_speed(config: TrainSpeedConfig, out_dir: str | Path) -> dict[str, Any]:
    """Time every variant ``runs`` times per model, interleaved; write train_speed.json and report.md."""
    config.validate()
    out = Path(out_dir)
    with measuring(out, "train_speed"):  # two benches timing at once skew each other's every number
        return _time_all(config, out)


def _time_all(config: TrainSpeedConfig, out: Path) -> dict[str, Any]:
    set_threads(config.num_threads)
    rows = []
    for model in config.models:
        task = config.task(model)
        dataset = task.load_data()
        times: dict[str, list[float]] = {v: [] for v in config.variants}
        for variant in config.variants:  # a throw-away epoch each: the first timed one paid ~1.3 s of start-up
            time_epoch(config, task, dataset, variant)
        for run in tqdm(range(config.runs), desc=model.label(), disable=None):
            order = config.variants if run % 2 == 0 else config.variants[::-1]  # neither always goes first
            for variant in order:
                times[variant].append(time_epoch(config, task, dataset, variant))
        medians = {v: statistics.median(t) for v, t in times.items()}
        dense = medians.get("dense")
        rows.append(
            {
                "model": model.label(),
                "dataset": task.data.dataset,
                "n_train": len(dataset.y_train),
                "seconds": times,
                "median": medians,
                "ratio_to_dense": {v: m / dense for v, m in medians.items()} if dense else {},
            }
        )
        log.info("train speed %s: %s", model.label(), medians)
    result = {"config": to_dict(config), "rows": rows}
    write_text(out / RESULTS_FILE, json.dumps(result, indent=1))
    write_text(out / REPORT_FILE, report(config, rows))
    return result


def report(config: TrainSpeedConfig, rows: list[dict[str, Any]]) -> str:
    """The table of medians, in the accuracy report's :func:`format_seconds` (a fixed ``:.2f`` printed a
    fast epoch as 0.00), with the ratio to dense only where ``dense`` is a variant (the header said
    "(× dense)" over columns of seconds alone)."""
    ratio = " (× dense)" if "dense" in config.variants else ""
    header = ["model (examples per epoch)", *[f"{v} s{ratio}" for v in config.variants]]
    body = []
    for r in rows:
        cells = [f"{markdown_literal(r['model'])} ({r['n_train']})"]
        for v in config.variants:
            times = r["ratio_to_dense"].get(v)
            cells.append(format_seconds(r["median"][v]) + (f" (×{times:.3f})" if times is not None else ""))
        body.append(cells)
    runs = "; ".join(
        f"{r['model']} {v}: " + ", ".join(format_seconds(t) for t in r["seconds"][v])
        for r in rows
        for v in config.variants
    )
    threads = (
        count_of(config.num_threads, "torch thread")
        if config.num_threads
        else "the torch threads of OMP_NUM_THREADS, else of every core"
    )
    return "\n".join(
        [
            f"# Training speed: {config.name or 'masked vs dense'}",
            "",
            f"Median of {config.runs} runs of {config.epochs:g} epoch(s), variants interleaved; batch "
            f"{config.batch_size}, {threads}, device {config.device}, random "
            f"mask at density {config.density:g}. Seconds per `train` call, mask set-up and the final check included.",
            "",
            markdown_table(header, body),
            "",
            f"Every run (s): {runs}.",
            "",
        ]
    )
