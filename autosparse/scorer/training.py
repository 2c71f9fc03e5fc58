"""``train-scorer``: fit the ranker and the layer heads on a store, validate on held-out runs, save.

This module only orchestrates: the ranker is fitted by the one loop of :mod:`autosparse.scorer.fit`
for whichever architecture the config names (:mod:`autosparse.scorer.archs`), the allocator and
unit head by :mod:`autosparse.scorer.heads`, and the held-out report is
:mod:`autosparse.scorer.evaluation`'s. Validation is always on whole held-out runs
(:mod:`autosparse.scorer.data` says why).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from autosparse.core.config_record import to_dict
from autosparse.core.errors import ConfigError, StoreError
from autosparse.core.folders import check_output_path, has_content
from autosparse.features import SCHEMA_VERSION
from autosparse.scorer.archs.base import TrainingSplit, get_arch
from autosparse.scorer.checkpoint import (
    CARD_FILE,
    WEIGHTS_FILE,
    Card,
    changes_scorer_in_place,
    load_checkpoint,
    local_scorer,
    recorded_scorer,
    resolve_scorer,
    save_checkpoint,
    writing_scorer,
)
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.coverage import Coverage, source_label
from autosparse.scorer.data import RunSamples, check_features, load_samples, open_split
from autosparse.scorer.evaluation import BASELINE_RANKERS, evaluate_scorer
from autosparse.scorer.fit import fit_ranker
from autosparse.scorer.heads import train_allocator, train_allocators, unit_card
from autosparse.scorer.loaded import load_scorer
from autosparse.scorer.nets import LayerHead
from autosparse.store.layout import check_outside_stores
from autosparse.store.reader import StoreReader
from autosparse.training.resume import STATE_FILE

log = logging.getLogger(__name__)


@dataclass
class TrainedScorer:
    ranker: torch.nn.Module
    allocator: LayerHead
    card: Card
    curve: list[dict[str, float]] = field(default_factory=list)


def train_scorer(
    store: str | Path,
    *,
    holdout: str | None,
    out: str | Path,
    config: ScorerConfig | None = None,
    name: str | None = None,
    command: str | None = None,
    train_on: str | None = None,
    overwrite: bool = False,
) -> TrainedScorer:
    """Train a scorer on the store's runs matched by ``train_on`` (default: all) and not by ``holdout``.

    A finished scorer already in ``out`` is refused unless ``overwrite``: its card may carry evidence
    that took hours of bench cells to measure. What a killed run left half-written is replaced.
    """
    cfg = config or ScorerConfig()
    train_reader, val_reader = open_split(str(store), holdout, train_on)  # a wrong store or filter first: cheap
    # before --out is made: a refused run left it behind holding only its lock (helper)
    check_features(train_reader, (*cfg.ranker_features, *cfg.allocator_features))
    check_scorer_out(out, overwrite=overwrite)
    with writing_scorer(out):  # two runs into one --out: the later one replaced the first, both reporting success
        check_scorer_out(out, overwrite=overwrite, quiet=True)  # a scorer finished there meanwhile is refused too
        return _train(store, train_reader, val_reader, holdout, out, cfg, name, command, train_on)


def _train(
    store: str | Path,
    train_reader: StoreReader,
    val_reader: StoreReader | None,
    holdout: str | None,
    out: str | Path,
    cfg: ScorerConfig,
    name: str | None,
    command: str | None,
    train_on: str | None,
) -> TrainedScorer:
    arch = get_arch(cfg.arch)
    start = time.perf_counter()
    baseline_feats = tuple(f for f in BASELINE_RANKERS.values())
    train_runs = load_samples(
        train_reader,
        cfg.ranker_features,
        cfg.allocator_features,
        max_per_layer=cfg.max_per_layer,
        seed=cfg.seed,
        min_round_accuracy=cfg.min_round_accuracy,
    )
    val_runs = (
        load_samples(
            val_reader,
            cfg.ranker_features,
            cfg.allocator_features,
            keep_full=True,
            baseline_features=baseline_feats,
            min_round_accuracy=cfg.min_round_accuracy,
            role="held-out",
        )
        if val_reader is not None
        else []
    )
    log.info("training on %d runs, validating on %d held-out runs", len(train_runs), len(val_runs))
    ranker, curve = fit_ranker(arch, TrainingSplit(train_reader, val_reader, train_runs, val_runs), cfg)
    alloc = train_allocators(train_runs, cfg)
    units = train_allocator(train_runs, cfg, target="units") if cfg.unit_head else None
    metrics: dict[str, Any] = {}
    if val_runs:
        metrics = evaluate_scorer(lambda run: arch.score_run(ranker, val_reader, run), alloc, val_runs)
    name = name or Path(out).absolute().resolve().name  # `--out .` is named after its folder, not ""
    card = Card(
        name=name,
        arch=cfg.arch,
        schema_version=SCHEMA_VERSION,
        ranker={"features": list(cfg.ranker_features), "hidden": list(cfg.hidden), **arch.card_meta(cfg)},
        allocator=allocator_entry(cfg),
        normalisation={},
        training={
            "store": str(store),
            "holdout": holdout,
            "train_on": train_on,
            "train_runs": train_reader.run_ids,
            # the held-out runs early stopping and the metrics read: not those the accuracy filter cut to their
            # dense round, which are listed apart (review)
            "val_runs": [r.run_id for r in val_runs],
            **_left_out(val_reader, val_runs),
            "config": to_dict(cfg),
            # called from Python (a script, a notebook), sys.argv is the script's or the kernel's: the call
            # itself reproduces it, with the config recorded beside it (Python-jobs hunt)
            "command": command
            or (
                f"autosparse.scorer.training.train_scorer({str(store)!r}, holdout={holdout!r}, out={str(out)!r}, "
                f"train_on={train_on!r}, config=ScorerConfig(**card.training['config']))"
            ),
            "seconds": round(time.perf_counter() - start, 1),
            # the GNN's summed messages round differently with more threads: its weights reproduce at this count
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "curve": curve,
        },
        metrics=metrics,
        units=unit_card(units, cfg.allocator_features, cfg.alloc_hidden, cfg.unit_scale, val_runs) if units else {},
        coverage=fit_coverage(cfg.allocator_features, train_runs).to_card(),
    )
    tensors = {f"ranker.{k}": v for k, v in ranker.state_dict().items()}
    tensors.update({f"allocator.{k}": v for k, v in alloc.state_dict().items()})
    if units is not None:
        tensors.update({f"units.{k}": v for k, v in units.state_dict().items()})
    files = {"metrics.json": json.dumps(metrics, indent=2).encode()}
    if curve:
        files["training_curve.png"] = _curve_png(curve)
    save_checkpoint(out, tensors, card, files)  # the card with its metrics and curve, or the old set: never a mix
    return TrainedScorer(ranker, alloc, card, curve)


@changes_scorer_in_place
def add_unit_head(
    scorer: str | Path, store: str | Path, *, scale: float = 0.5, config: ScorerConfig | None = None
) -> Card:
    """Train a unit head on the scorer's own training runs and add it to the checkpoint in place.

    Why: the unit head is a small layer-level regressor; adding it to a shipped scorer keeps the
    ranker and allocator bit-identical (their results stay valid) instead of retraining them.
    ``scale`` multiplies the predicted fractions when pruning (choose it on held-out source
    architectures, never on the target). The card records the command; the weights hash is renewed.
    """
    if not 0.0 < scale <= 1.0:
        raise ConfigError(f"unit scale must be in (0, 1], got {scale}")
    directory = local_scorer(scorer)
    card, tensors = load_checkpoint(directory)
    cfg = config or card_config(card)
    train_ids = list(card.training.get("train_runs", []))
    val_ids = list(card.training.get("val_runs", []))
    by_id = _layer_level_runs(card, store, cfg, train_ids + val_ids)
    units = train_allocator([by_id[i] for i in train_ids], cfg, target="units")
    tensors = {k: v for k, v in tensors.items() if not k.startswith("units.")}
    tensors.update({f"units.{k}": v for k, v in units.state_dict().items()})
    card.units = unit_card(units, card.allocator["features"], cfg.alloc_hidden, scale, [by_id[i] for i in val_ids])
    card.training["unit_head_command"] = (
        f"autosparse train-scorer --add-unit-head --unit-scale {scale:g} --store {store} --out {scorer}"
    )
    save_checkpoint(directory, tensors, card)
    return card


def _layer_level_runs(card: Card, store: str | Path, cfg: ScorerConfig, ids: list[str]) -> dict[str, RunSamples]:
    """The card's runs ``ids`` read back from ``store`` at the layer level (what the heads train on), by id,
    with the rounds the scorer was trained on; a store lacking any of them is refused by name."""
    reader, _ = open_split(str(store), None)
    missing = sorted(set(ids) - set(reader.run_ids))
    if missing:
        raise StoreError(
            f"{store} lacks {len(missing)} of the scorer's runs (e.g. {missing[0]}); pass the store it was trained on"
        )
    runs = load_samples(
        reader,
        (),
        card.allocator["features"],
        max_per_layer=1,
        seed=cfg.seed,
        min_round_accuracy=cfg.min_round_accuracy,
    )
    return {r.run_id: r for r in runs}


def card_config(card: Card, **changes: Any) -> ScorerConfig:
    """The config a card's scorer was trained with, for retraining one of its heads alike.

    A card older than ``min_round_accuracy`` trained on every IRP round, so it gets 0.0, not
    today's default: a retrained head must see the rounds the scorer was trained on (before
    2026-12-02 ``--add-unit-head`` read every round whatever the card said).
    """
    fields = ScorerConfig.__dataclass_fields__
    given = {k: v for k, v in card.training.get("config", {}).items() if k in fields}
    given.setdefault("min_round_accuracy", 0.0)
    return ScorerConfig(**{**given, **changes})


def allocator_entry(cfg: ScorerConfig) -> dict[str, Any]:
    """The card's ``allocator`` entry; ``members`` only when there are several (older cards have none)."""
    entry: dict[str, Any] = {"features": list(cfg.allocator_features), "hidden": list(cfg.alloc_hidden)}
    if cfg.alloc_members > 1:
        entry["members"] = cfg.alloc_members
    return entry


@changes_scorer_in_place
def replace_allocator(scorer: str | Path, store: str | Path, *, members: int, source: str | Path | None = None) -> Card:
    """Retrain the allocator of an existing scorer, as ``members`` networks, on its own training runs, in
    place; or, with ``source``, copy that scorer's allocator instead of training one.

    Why: the allocator is a small layer-level regressor whose answer outside the sources is largely
    its training draw (:class:`~autosparse.scorer.nets.AllocatorEnsemble`); replacing it alone keeps
    the ranker and the unit head bit-identical, so a comparison with the old scorer isolates the
    allocation. Copying it from a scorer trained on the same runs makes two scorers differ in their
    rankers only (a retrained one need not: a store regenerated on another CPU drifts). The held-out
    metrics are measured again (their allocation and mask columns change); the student evidence
    measured the old allocator's masks, so it is dropped (measure it again with
    ``--add-student-evidence``); the density evidence and the coverage are about the training runs
    and stay. A retrained allocator follows the card's recipe (widths, steps, rate, seed).
    """
    directory = local_scorer(scorer)
    card, tensors = load_checkpoint(directory)
    train_ids = list(card.training.get("train_runs", []))
    val_ids = list(card.training.get("val_runs", []))
    cfg = card_config(card, alloc_members=members)
    # a wrong source fails before the store is read
    copied = _allocator_of(source, card) if source is not None else None
    by_id = _layer_level_runs(card, store, cfg, train_ids + val_ids)  # refuses a store lacking any of them
    if copied is None:
        alloc = train_allocators([by_id[i] for i in train_ids], cfg)
        entry, recipe = allocator_entry(cfg), {"alloc_members": members}
        command = (
            f"autosparse train-scorer --replace-allocator --alloc-members {members} --store {store} --out {scorer}"
        )
    else:
        alloc, entry, recipe = copied
        command = f"autosparse train-scorer --allocator-from {source} --store {store} --out {scorer}"
    alloc.eval()
    if val_ids:
        _, val_reader = open_split(str(store), f"run_id={','.join(val_ids)}")
        assert val_reader is not None
        val_runs = load_samples(
            val_reader,
            card.ranker["features"],
            card.allocator["features"],
            keep_full=True,
            baseline_features=tuple(BASELINE_RANKERS.values()),
            min_round_accuracy=cfg.min_round_accuracy,
            role="held-out",
        )
        arch = get_arch(card.arch)
        ranker = load_scorer(directory).ranker
        card.metrics = evaluate_scorer(lambda run: arch.score_run(ranker, val_reader, run), alloc, val_runs)
    tensors = {k: v for k, v in tensors.items() if not k.startswith("allocator.")}
    tensors.update({f"allocator.{k}": v for k, v in alloc.state_dict().items()})
    card.allocator = entry
    card.training.setdefault("config", {}).update(recipe)
    card.training["allocator_command"] = command
    if card.student:
        log.warning("dropping the student evidence of %s: it measured the replaced allocator's masks", directory)
        card.student = {}
    save_checkpoint(directory, tensors, card, {"metrics.json": json.dumps(card.metrics, indent=2).encode()})
    return card


def _allocator_of(source: str | Path, card: Card) -> tuple[LayerHead, dict[str, Any], dict[str, Any]]:
    """Scorer ``source``'s allocator, its card entry and its recipe, for a scorer whose ``card`` was
    trained on the same runs with the same layer descriptors (refused by name otherwise: an
    allocator fitted on other runs would say nothing about this scorer's sources)."""
    src_card, _ = load_checkpoint(resolve_scorer(source))
    if list(src_card.allocator["features"]) != list(card.allocator["features"]):
        raise ConfigError(
            f"the allocator of {source} reads other layer descriptors ({', '.join(src_card.allocator['features'])}) "
            f"than this scorer's ({', '.join(card.allocator['features'])}); copy one from a scorer with the same "
            "allocator features, or retrain with --replace-allocator"
        )
    ours, theirs = set(card.training.get("train_runs", [])), set(src_card.training.get("train_runs", []))
    if ours != theirs:
        raise ConfigError(
            f"{source} was trained on other runs ({len(theirs - ours)} not among this scorer's, {len(ours - theirs)} "
            "of this scorer's missing); copy the allocator of a scorer trained on the same runs, or retrain it "
            "with --replace-allocator"
        )
    recipe = {k: v for k, v in src_card.training.get("config", {}).items() if k.startswith("alloc")}
    recipe.setdefault("alloc_members", int(src_card.allocator.get("members", 1)))
    return load_scorer(source).allocator, dict(src_card.allocator), recipe


def fit_coverage(features: tuple[str, ...] | list[str], runs: list[RunSamples]) -> Coverage:
    """Where the allocator was trained: every training run's layer descriptors, by architecture."""
    return Coverage.fit(features, [r.layer_feats for r in runs], [source_label(r.attrs, r.run_id) for r in runs])


@changes_scorer_in_place
def add_coverage(scorer: str | Path, store: str | Path) -> Card:
    """Record the coverage of an existing scorer's training runs on its card, in place (weights untouched).

    For scorers trained before cards carried it: the runs are read back from ``store`` by the ids
    the card lists, so the coverage is exactly that of the layers the allocator was fitted on.
    """
    directory = local_scorer(scorer)
    card, tensors = load_checkpoint(directory)
    train_ids = list(card.training.get("train_runs", []))
    by_id = _layer_level_runs(card, store, card_config(card), train_ids)
    card.coverage = fit_coverage(card.allocator["features"], [by_id[i] for i in train_ids]).to_card()
    card.training["coverage_command"] = f"autosparse train-scorer --add-coverage --store {store} --out {scorer}"
    save_checkpoint(directory, tensors, card)
    return card


def check_scorer_out(out: str | Path, *, overwrite: bool = False, quiet: bool = False) -> None:
    """Refuse an ``out`` that training would end by failing on (a file), by mixing into (a folder of
    other things) or by replacing a finished scorer without ``overwrite``, before the minutes of
    training, not after; replacing a scorer there is said."""
    path = check_output_path(out)
    check_outside_stores(path, "--out")
    if has_content(path):  # the lock file is no content
        if not ((path / CARD_FILE).exists() or (path / WEIGHTS_FILE).exists()):
            raise ConfigError(f"--out {path} holds other files and no scorer; give a new or empty directory")
        if not (path / CARD_FILE).exists() and _trained_model_in(path):
            # its weights file has a scorer's name but is a trained network's: not a killed run's leftover (helper)
            raise ConfigError(
                f"--out {path} holds the result of `autosparse train` (a trained model, no scorer); give a new or "
                "empty directory"
            )
        card, whole = recorded_scorer(path)
        if card is not None and not overwrite:
            extra = ", ".join(k for k in ("evidence", "student", "coverage", "units") if card.get(k))
            name = card.get("name", path.name)
            if whole:
                kept = f" (its card also holds {extra}, which retraining drops)" if extra else ""
                raise ConfigError(
                    f"--out {path} already holds the trained scorer {name!r}{kept}; "
                    "give a new directory, or pass --overwrite (overwrite=True) to replace it"
                )
            kept = f"; its card holds {extra}, which retraining drops" if extra else ""
            raise ConfigError(
                f"--out {path} holds the scorer {name!r} whose {WEIGHTS_FILE} is missing or "
                f"damaged (it no longer matches its card){kept}: pass --overwrite (overwrite=True) to replace the "
                f"scorer, or restore {WEIGHTS_FILE} from a copy (an interrupted save of autosparse before 2026-12-04 "
                "leaves this too)"
            )
        # a finished one the caller chose to replace, or one a killed run left half-written
        if not quiet:
            log.warning("replacing the scorer in %s", path)


def _left_out(val_reader: StoreReader | None, val_runs: list[Any]) -> dict[str, list[str]]:
    """``{"val_runs_left_out": [...]}`` for held-out runs no metric read, else nothing (the card as before)."""
    used = {r.run_id for r in val_runs}
    left = [r for r in (val_reader.run_ids if val_reader is not None else []) if r not in used]
    return {"val_runs_left_out": left} if left else {}


def _trained_model_in(path: Path) -> bool:
    """Whether ``path`` holds what ``autosparse train --out`` writes: its checkpoint, or a metrics.json
    with the training's fingerprint (a scorer's metrics.json maps held-out runs to their metrics)."""
    if (path / STATE_FILE).exists():
        return True
    try:
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metrics, dict) and "fingerprint" in metrics and "test_accuracy" in metrics


def _curve_png(curve: list[dict[str, float]]) -> bytes:
    """The training curve as PNG bytes, saved with the card as one change (:func:`save_checkpoint`)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [c["step"] for c in curve]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(steps, [c["loss"] for c in curve])
    ax[0].set(xlabel="step", ylabel="ranking loss (train)", title="training loss")
    ax[1].plot(steps, [c.get("val_precision", float("nan")) for c in curve], label="precision@IMP count")
    ax[1].plot(steps, [c.get("val_spearman", float("nan")) for c in curve], label="Spearman")
    ax[1].set(xlabel="step", title="held-out runs")
    ax[1].legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
