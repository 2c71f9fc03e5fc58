"""The bench grid as a typed config: the YAML of ``autosparse bench`` *is* these dataclasses.

A bench is judged by two things — accuracy at each sparsity next to baselines, and whether
someone else can reproduce it — so everything that determines a number lives here (models,
datasets, methods with their hyperparameters, densities, seeds, the one training recipe every
method shares, data subset sizes) and is hashed into the id of each result. Whatever is only
cosmetic (labels, thread counts) is left out of the hash so renaming a row never recomputes it,
and a dataset is hashed in its registered spelling (``fmnist`` is ``fashion-mnist``).
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from autosparse.core.config import from_dict, listed, load_yaml
from autosparse.core.config_record import to_dict
from autosparse.core.errors import (
    AutosparseError,
    CheckpointError,
    ConfigError,
    DensityError,
    UnknownNameError,
    check_integers,
)
from autosparse.core.executors import check_resources
from autosparse.data import absolute_root, canonical_dataset, check_subset_sizes, dataset_info
from autosparse.models import model_info
from autosparse.models.info import unknown_options
from autosparse.pruners import available, make_pruner
from autosparse.task import DataSpec, ModelSpec
from autosparse.training.irp import check_rewind_step
from autosparse.training.trainer import TrainConfig

IMP = "imp"  # iterative magnitude pruning from an IRP run: the reference row, not a registered pruner

DEFAULT_DENSITIES = (0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001)


@dataclass
class MethodSpec:
    """One row of the bench: a registered pruner (or ``imp``) with its hyperparameters."""

    method: str  # a registered pruning method, or imp (the IRP reference)
    hparams: dict[str, Any] = field(default_factory=dict)  # the method's hyperparameters (`autosparse methods`)
    label: str = ""  # the row name in tables and plots; defaults to the method plus its hparams

    def title(self) -> str:
        if self.label:
            return self.label
        if not self.hparams:
            return self.method
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.hparams.items()))
        return f"{self.method}({opts})"

    @property
    def is_imp(self) -> bool:
        return self.method == IMP


@dataclass
class ImpSettings:
    """Hyperparameters of the ``imp`` row (the ``hparams`` of a ``method: imp`` entry).

    By default IMP prunes straight from one bench density to the next (so its curve passes
    exactly through the bench's columns) and rewinds survivors to θ₀ — the same initialisation
    every one-shot method starts from. ``max_prune_fraction`` inserts extra rounds so no round
    removes more than that fraction of the surviving weights (the lottery-ticket recipe uses 0.2);
    it costs more training but gives IMP its usual strength at the first bench density.
    ``round_epochs`` prices the rounds: each pruning round trains that long instead of the
    bench's recipe, and each cell then trains its mask from θ₀ with the recipe, like a one-shot
    cell, so the row says what the mask is worth when finding it costs less.
    """

    rewind_step: int = 0  # 0 rewinds survivors to θ0; k > 0 to the weights after k steps of dense training
    criterion: Literal["magnitude", "snip", "flow"] = "magnitude"  # what each round prunes by
    scope: Literal["global", "layerwise"] = (
        "global"  # global: rank weights across the whole model | layerwise: per layer
    )
    max_prune_fraction: float = 0.0  # most of the survivors one round may remove (extra rounds); 0 = no extra rounds
    round_epochs: float = 0.0
    """epochs each pruning round trains (0 = the bench's train.epochs, and a cell is its round's training);
    when set, every cell retrains its round's mask from θ0 with the bench's recipe"""

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_prune_fraction < 1.0:
            raise ConfigError(
                f"imp max_prune_fraction must be in [0, 1), got {self.max_prune_fraction}; 0 disables extra rounds"
            )
        if self.rewind_step < 0:
            raise ConfigError(f"imp rewind_step must be >= 0, got {self.rewind_step}")
        if self.round_epochs < 0:
            raise ConfigError(
                f"imp round_epochs must be >= 0, got {self.round_epochs}; 0 trains each round as the bench does"
            )
        if self.round_epochs and self.rewind_step:
            raise ConfigError(
                "imp round_epochs retrains each cell's mask from θ0, so it cannot rewind to a later step: "
                "drop rewind_step or round_epochs"
            )

    def schedule(self, densities: list[float] | tuple[float, ...]) -> list[float]:
        """The IRP target densities (strictly decreasing, < 1) that pass through every bench density."""
        targets = sorted({float(d) for d in densities if d < 1.0}, reverse=True)
        if not self.max_prune_fraction:
            return targets
        keep = 1.0 - self.max_prune_fraction
        out: list[float] = []
        prev = 1.0
        for d in targets:
            # fewest geometric steps from prev to d with each step keeping >= `keep` of the survivors
            steps = max(1, math.ceil(math.log(d / prev) / math.log(keep) - 1e-9))
            out.extend(prev * (d / prev) ** (i / steps) for i in range(1, steps))
            out.append(d)
            prev = d
        return out


def imp_settings(spec: MethodSpec) -> ImpSettings:
    return from_dict(ImpSettings, spec.hparams, where=f"hparams of method {spec.title()!r}")


def check_hparams(spec: MethodSpec) -> None:
    """A typo in a hyperparameter fails here, naming the row, not in a worker hours into the grid."""
    try:
        make_pruner(spec.method, spec.hparams)
    except ConfigError as exc:
        raise ConfigError(f"method {spec.title()!r}: {exc}") from exc


def same_settings(specs: Iterable[MethodSpec]) -> list[tuple[str, str]]:
    """Pairs of rows (labels) whose hyperparameters are written differently but resolve to the same
    settings of one method (``synflow`` and ``synflow`` with ``rounds: 100``, its default).

    Why: cell ids hash the hyperparameters as written (they name results on disk), so such rows are
    two computations with one result; rows written alike share one (:meth:`CellSpec.computation_id`).
    """
    seen: list[tuple[MethodSpec, Any]] = []
    pairs = []
    for spec in specs:
        if spec.is_imp:
            continue
        try:
            resolved = make_pruner(spec.method, spec.hparams).config
        except AutosparseError:
            continue  # refused by validate, with its own error
        alike = [s for s, c in seen if s.method == spec.method and c == resolved]
        twin = next((s for s in alike if s.hparams != spec.hparams), None)
        if twin is not None and all(s.hparams != spec.hparams for s in alike):  # else one computation already
            pairs.append((twin.title(), spec.title()))
        seen.append((spec, resolved))
    return pairs


def unloadable_methods(specs: Iterable[MethodSpec]) -> dict[str, AutosparseError]:
    """The rows among ``specs`` whose method cannot run here, by label, with why (``autos``: its scorer)."""
    failed: dict[str, AutosparseError] = {}
    for label, spec in {s.title(): s for s in specs if not s.is_imp}.items():
        try:
            make_pruner(spec.method, spec.hparams).config.preflight()
        except AutosparseError as e:  # a missing or broken scorer, an unknown name, another schema…
            failed[label] = e
    return failed


def refuse_unloadable(failed: dict[str, AutosparseError], titles: Sequence[str]) -> None:
    """One error naming every row that cannot run and the ``--methods`` that runs all the others (e.g.
    validation rows whose scorers a later step trains), before the first cell or measurement."""
    if not failed:
        return
    others = [t for t in titles if t not in failed]
    hint = ""
    if others and not any("," in t for t in others):  # --methods splits at commas
        hint = f"; or leave {'it' if len(failed) == 1 else 'them'} out: --methods {','.join(others)}"
    first = next(iter(failed.values()))
    text = "; ".join(f"bench row {label!r}: {e}" for label, e in failed.items())
    cls = type(first) if type(first) in (CheckpointError, ConfigError) else ConfigError  # one-message classes
    raise cls(text + hint) from first


@dataclass(frozen=True)
class CellData(DataSpec):
    """Which data a cell trains and is tested on, and how many examples per class its pruning batch takes.

    The same for every cell of a bench; its fields (in this order) are part of every cell's hash
    and record, as they were when this was the bench's own DataSpec.
    """

    samples_per_class: int = 10  # examples per class in the pruning batch of data-dependent methods


@dataclass
class BenchConfig:
    """An accuracy-vs-sparsity grid: models × datasets × methods × densities × seeds.

    One cell per (model, dataset, method, density, seed) — IMP is one IRP run per (model,
    dataset, seed) that yields all densities. Every method is trained with ``train``; the cell
    seed sets the initial weights, the pruning batch and the training order.
    """

    kind: Literal["accuracy"] = "accuracy"  # accuracy vs sparsity (a `kind: speed` config times the methods)
    name: str = ""  # the bench's name in its report; empty: the --out folder's name
    models: list[ModelSpec] = field(default_factory=lambda: [ModelSpec("lenet_300_100")])
    """models to prune: names (lenet_300_100,conv4) or mappings with model, model_kwargs, name (YAML or
    JSON); a name that labels a model of --config picks that entry"""
    datasets: list[str] = field(default_factory=lambda: ["fashion-mnist"])  # datasets every model is trained on
    methods: list[MethodSpec] = field(
        default_factory=lambda: [MethodSpec(m) for m in ("random", "magnitude", "snip", "synflow", IMP)]
    )
    """rows of the bench: methods (snip,synflow,imp) or mappings with method, hparams, label (YAML or
    JSON); a name that labels a row of --config picks that row with its hyperparameters"""
    densities: list[float] = field(default_factory=lambda: list(DEFAULT_DENSITIES))  # fractions of weights kept
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # cell seeds: initial weights, pruning batch, order
    train: TrainConfig = field(default_factory=TrainConfig)
    n_train: int | None = None  # training examples, one stratified subset for every cell (none: all)
    n_test: int | None = None  # test examples (none: all)
    data_root: str | None = None  # where datasets are read from (none: a system copy, then the default folder)
    data_seed: int = 0  # picks the train/test subset; the same for every cell so seeds vary only the run
    download: bool = False  # download a missing torchvision dataset instead of failing
    samples_per_class: int = 10  # pruning batch of data-dependent methods
    num_cpus: float = 1.0  # CPUs each job reserves on a Ray cluster (--executor ray)
    num_gpus: float = 0.0  # GPUs each job reserves on a Ray cluster (--executor ray)
    gap_to: str = ""
    """label of the imp row the learned rows' share of the gap is measured to; empty: a row labelled
    with lth, else the first imp row"""

    @classmethod
    def from_yaml(cls, path: str | Path) -> BenchConfig:
        return bench_config_from_dict(load_yaml(path), where=str(path))

    def method_titles(self) -> list[str]:
        return [m.title() for m in self.methods]

    def dataset_names(self) -> list[str]:
        """The datasets in their registered spelling (``fmnist`` → ``fashion-mnist``), as cells hash
        and record them. Why: one dataset spelled two ways was computed twice, under two cell ids."""
        return [canonical_dataset(d) for d in self.datasets]

    def cell_data(self, dataset: str) -> CellData:
        """The data every cell on ``dataset`` trains and is tested on (one subset for all seeds)."""
        return CellData(
            canonical_dataset(dataset),
            self.n_train,
            self.n_test,
            absolute_root(self.data_root),  # for workers in another folder; not hashed into the cell ids
            self.data_seed,
            self.download,
            self.samples_per_class,
        )

    def __post_init__(self) -> None:
        """Built in Python, the grid takes what its YAML takes: names or mappings for models and methods,
        one value where a list belongs, a mapping for train. Names failed deep inside (no ``.is_imp``),
        one dataset read as its letters, seeds ["0"] and densities ["0.1"] failed every cell after the
        folder was made (Python-jobs hunt)."""
        self.models = listed(self.models, ModelSpec, where="a bench model")
        self.methods = listed(self.methods, MethodSpec, where="a bench method")
        self.datasets, self.seeds, self.densities = listed(self.datasets), listed(self.seeds), listed(self.densities)
        self.seeds = check_integers(self.seeds, "seeds")
        bad = [d for d in self.densities if isinstance(d, bool) or not isinstance(d, numbers.Real)]
        if bad:
            raise ConfigError(f"densities are numbers (e.g. [0.1, 0.01]), got {bad[0]!r} ({type(bad[0]).__name__})")
        if isinstance(self.train, Mapping):
            self.train = from_dict(TrainConfig, self.train, where="train")

    def sorted_densities(self) -> list[float]:
        """Densities from dense to sparse: the column order of every table (sparsity increasing)."""
        return sorted(self.densities, reverse=True)

    def validate(self) -> BenchConfig:
        """Every mistake that would otherwise surface as a failed cell hours in, caught before anything runs."""
        if not self.models or not self.datasets or not self.methods or not self.densities or not self.seeds:
            raise ConfigError("a bench needs at least one model, dataset, method, density and seed")
        for d in self.densities:
            if not 0.0 < float(d) <= 1.0:
                raise DensityError(f"bench densities must be in (0, 1], got {d}; e.g. 0.01 keeps 1% of the weights")
        check_unique("density", self.densities)
        for i, d in enumerate(self.densities):  # 1 - 0.999 is not 0.001: two cells, two columns of one name
            twin = next((e for e in self.densities[:i] if math.isclose(float(d), float(e), rel_tol=1e-9)), None)
            if twin is not None:
                raise ConfigError(
                    f"densities {twin!r} and {d!r} differ only by float rounding (both keep the same weights): list "
                    "that density once"
                )
        check_unique("seed", self.seeds)
        check_resources(self.num_cpus, self.num_gpus)
        check_unique("dataset", self.datasets)
        if len(set(self.dataset_names())) < len(self.datasets):
            raise ConfigError(
                f"datasets {self.datasets} name one dataset more than once, spelled two ways; list each once"
            )
        check_unique("model label", [m.label() for m in self.models])
        check_unique("method label", self.method_titles())
        for what, labels in (("model label", [m.label() for m in self.models]), ("method label", self.method_titles())):
            by_file: dict[str, str] = {}
            for text in labels:  # a cell's file name is the slug: "r a" and "r-a" shared one cell (review)
                if slug(text) in by_file:
                    raise ConfigError(
                        f"{what}s {by_file[slug(text)]!r} and {text!r} are the same in a file name ({slug(text)!r}): "
                        "their cells would overwrite each other; rename one"
                    )
                by_file[slug(text)] = text
        known = available()
        for spec in self.methods:
            if spec.is_imp:
                imp_settings(spec)
                continue
            if spec.method not in known:
                raise UnknownNameError(
                    "pruning method",
                    spec.method,
                    sorted({*known, IMP}),
                    hint="list them with `autosparse methods` (imp is the bench's IRP reference)",
                )
            check_hparams(spec)
        imps = [m.title() for m in self.methods if m.is_imp]
        # with no imp row (--methods ran only the baselines) there is no gap to measure, and nothing to refuse
        if self.gap_to and imps and self.gap_to not in imps:
            raise ConfigError(
                f"gap_to {self.gap_to!r} (the config's or --gap-to) is not an imp row of this bench; use one of: "
                f"{', '.join(imps)}, add the row {self.gap_to!r} to --methods, or clear it with --gap-to ''"
            )
        if self.samples_per_class < 1:
            raise ConfigError(f"samples_per_class must be >= 1, got {self.samples_per_class}")
        if self.train.seed != 0:  # silently overruled before: the run looked seeded and was not
            raise ConfigError(
                f"train.seed={self.train.seed} has no effect in a bench: each cell's seed (seeds: "
                f"{list(self.seeds)}) sets its training order; remove train.seed from the config (its cells do "
                "not depend on it) and choose the seeds with --seeds"
            )
        for ds in self.datasets:
            check_subset_sizes(ds, self.n_train, self.n_test)
        for m in self.models:
            info = model_info(m.model)
            if not info.open_options:
                unknown = sorted(set(m.model_kwargs) - set(info.options))
                if unknown:
                    raise unknown_options(f"model {m.model}", unknown, info.options)
        for spec in self.methods:
            if spec.is_imp:
                for ds in self.datasets:
                    n = self.n_train if self.n_train is not None else dataset_info(ds).n_train
                    try:
                        check_rewind_step(imp_settings(spec).rewind_step, self.train, n)
                    except ConfigError as e:
                        raise ConfigError(f"bench row {spec.title()!r}: imp {e}") from None
        return self

    def check_models(self) -> None:
        """Build each model for each dataset's input shape (no data is loaded): a bad option value
        (``widths: abc``, a negative width) or a model that cannot take the data (a 1-D conv net on
        images) failed every one of its cells, after ``--check`` had called the grid valid."""
        for m in self.models:
            for ds in self.datasets:
                m.build(dataset_info(ds), seed=0)


def check_unique(what: str, values: list[Any]) -> None:
    seen: set[Any] = set()
    dup = [v for v in values if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
    if dup:
        fix = "give each a distinct label" if what.endswith("label") else "list each once"
        raise ConfigError(f"duplicate {what} {dup[0]!r} in the bench config; {fix}")


def bench_config_from_dict(data: dict[str, Any], *, where: str = "") -> BenchConfig:
    kind = data.get("kind", "accuracy")
    if kind != "accuracy":
        raise ConfigError(f"{where or 'config'} has kind {kind!r}; run it with `autosparse bench {kind}`")
    return from_dict(BenchConfig, data, where=where)


def pick_rows(given: Sequence[Any], rows: Sequence[Any], label: Callable[[Any], str]) -> list[Any]:
    """Flag items naming a row of the YAML by its label stand for that row (hyperparameters and all).

    Why: ``--methods autos-mlp,imp_lth`` on a config whose rows carry hyperparameters and labels
    would otherwise mean the bare methods ``autos-mlp`` and ``imp_lth``, which do not exist; other
    names (``snip``) stay new rows with default hyperparameters.
    """
    by_label = {label(r): to_dict(r) for r in rows}
    return [by_label.get(g, g) if isinstance(g, str) else g for g in given]


_SAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def slug(text: str) -> str:
    """A file-name-safe form of a label (``fake:fashion-mnist`` → ``fake-fashion-mnist``)."""
    return _SAFE.sub("-", str(text)).strip("-") or "x"


BENCH_KINDS = ("accuracy", "speed", "train_speed")


def config_kind(path: str | Path) -> str:
    """``accuracy``, ``speed`` or ``train_speed``: what a bench YAML describes (its ``kind`` key, accuracy if absent)."""
    return kind_of(load_yaml(path), str(path))


def kind_of(data: Mapping[str, Any], where: str) -> str:
    """``accuracy``, ``speed`` or ``train_speed``: the ``kind`` of a bench config's mapping (accuracy if absent)."""
    kind = data.get("kind", "accuracy")
    if kind not in BENCH_KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(map(repr, BENCH_KINDS))}, got {kind!r}")
    return str(kind)
