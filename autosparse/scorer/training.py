"""``train-scorer``: fit the ranker and the allocator on a store, validate on held-out runs.

Ranker loss (within layer, top-heavy): for a random subset of one layer's weights, the target
distribution is softmax(label · log base) — a weight that survived one more IRP round counts
``base`` times more — and the loss is its cross-entropy with softmax(score) (ListNet). Only
relative scores inside a layer matter, which is exactly how the score is used (ranking, then a
top-k per layer), and survivors of late rounds — the weights kept at ≥99% sparsity — dominate.

Allocator loss: squared error of log(layer density / global density) against IMP's layer
densities at every round of every training run.

Early stopping keeps the ranker state with the best held-out precision at the extreme rounds.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from autosparse.core.config import to_dict
from autosparse.core.errors import ConfigError, StoreError
from autosparse.features import SCHEMA_VERSION
from autosparse.scorer.checkpoint import Card, save_checkpoint
from autosparse.scorer.data import RunSamples, allocator_rows, load_samples, open_split, unit_rows
from autosparse.scorer.metrics import (
    alloc_log_error,
    mask_overlap,
    precision_at_round,
    random_precision,
    spearman_within_layers,
)
from autosparse.scorer.nets import Allocator, Ranker

log = logging.getLogger(__name__)

DEFAULT_RANKER_FEATURES = (
    "abs_theta_rank",
    "theta_z",
    "abs_grad_rank",
    "grad_z",
    "snip_rank",
    "snip_lognorm",
    "synflow_rank",
    "synflow_lognorm",
    "row_mass",
    "row_grad_mass",
    "col_mass",
    "col_grad_mass",
    "log_fan_in",
    "log_fan_out",
    "log_numel_frac",
    "rel_depth",
    "is_first",
    "is_last",
    "kind_conv",
)
DEFAULT_ALLOCATOR_FEATURES = (
    "kind_linear",
    "kind_conv",
    "log_fan_in",
    "log_fan_out",
    "log_numel",
    "log_numel_frac",
    "log_kernel",
    "log_in_units",
    "log_out_units",
    "rel_depth",
    "is_first",
    "is_last",
    "log_total",
)
BASELINE_RANKERS = {
    "magnitude": "abs_theta_rank",
    "snip": "snip_rank",
    "grasp": "grasp_rank",
    "synflow": "synflow_rank",
}


@dataclass
class ScorerConfig:
    """Hyperparameters of ``autosparse train-scorer`` (YAML keys = these field names)."""

    arch: Literal["mlp", "gnn"] = "mlp"
    ranker_features: tuple[str, ...] = DEFAULT_RANKER_FEATURES
    allocator_features: tuple[str, ...] = DEFAULT_ALLOCATOR_FEATURES
    hidden: tuple[int, ...] = (32, 16)
    steps: int = 3000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    groups_per_step: int = 16
    group_size: int = 2048
    label_base: float = 2.0  # a weight surviving one more round weighs this much more in the target
    eval_every: int = 250
    eval_min_round_density: float = 0.03  # early stopping looks at rounds at or below this density
    alloc_hidden: tuple[int, ...] = (32, 32)
    alloc_steps: int = 3000
    alloc_lr: float = 3e-3
    alloc_weight_decay: float = 1e-3
    max_per_layer: int = 300_000
    unit_head: bool = True  # also learn how many output units per layer IMP keeps alive (autos units=learned)
    unit_scale: float = (
        0.5  # multiplies the unit head's fractions at prune time; 0.5 won on held-out 784-400-100-10 (docs/SCORER.md)
    )
    seed: int = 0
    # GNN-only settings (ignored by the MLP)
    gnn_hidden: int = 32
    gnn_layers: int = 2

    def __post_init__(self) -> None:
        if self.arch not in ("mlp", "gnn"):
            raise ConfigError(f"unknown scorer arch {self.arch!r}; use mlp or gnn")
        if self.steps < 1 or self.group_size < 2 or self.groups_per_step < 1:
            raise ConfigError("steps, groups_per_step must be >= 1 and group_size >= 2")
        if not 0.0 < self.unit_scale <= 1.0:
            raise ConfigError(f"unit_scale must be in (0, 1], got {self.unit_scale}")
        if self.label_base <= 1.0:
            raise ConfigError("label_base must be > 1 (survivors of later rounds must weigh more)")


@dataclass
class TrainedScorer:
    ranker: torch.nn.Module
    allocator: Allocator
    card: Card
    curve: list[dict[str, float]] = field(default_factory=list)


def listnet_loss(scores: torch.Tensor, labels: torch.Tensor, base: float) -> torch.Tensor:
    """(G, m) scores and labels -> mean over groups of CE(softmax(label·log base), softmax(score))."""
    target = torch.softmax(labels.float() * math.log(base), dim=1)
    return -(target * torch.log_softmax(scores, dim=1)).sum(1).mean()


def _sample_groups(
    runs: list[RunSamples], cfg: ScorerConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    groups = [g for r in runs for g in r.groups if g.label.numel() >= 2]
    pick = torch.randint(len(groups), (cfg.groups_per_step,), generator=gen)
    xs, ys = [], []
    for i in pick.tolist():
        g = groups[i]
        idx = torch.randint(g.label.numel(), (cfg.group_size,), generator=gen)
        xs.append(g.features[idx])
        ys.append(g.label[idx])
    return torch.stack(xs), torch.stack(ys)


def _eval_rounds(run: RunSamples, cfg: ScorerConfig) -> list[int]:
    rounds = [r for r in range(1, len(run.densities)) if run.densities[r] <= cfg.eval_min_round_density]
    return rounds or [len(run.densities) - 1]


def _layer_scores(ranker: torch.nn.Module, run: RunSamples) -> list[torch.Tensor]:
    with torch.no_grad():
        out = []
        for g in run.groups:
            out.append(torch.cat([ranker(g.features[s : s + 65536]) for s in range(0, g.label.numel(), 65536)]))
        return out


def evaluate_ranker(ranker: torch.nn.Module, runs: list[RunSamples], cfg: ScorerConfig) -> dict[str, float]:
    precs, rhos = [], []
    for run in runs:
        scores = _layer_scores(ranker, run)
        labels = [g.label for g in run.groups]
        rhos.append(spearman_within_layers(scores, labels))
        precs.extend(precision_at_round(scores, labels, r) for r in _eval_rounds(run, cfg))
    return {"precision": float(np.nanmean(precs)), "spearman": float(np.nanmean(rhos))}


def train_ranker(
    train_runs: list[RunSamples], val_runs: list[RunSamples], cfg: ScorerConfig
) -> tuple[Ranker, list[dict]]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    ranker = Ranker(cfg.ranker_features, cfg.hidden)
    allx = torch.cat([g.features for r in train_runs for g in r.groups])
    ranker.set_normalisation(allx.mean(0), allx.std(0))
    opt = torch.optim.AdamW(ranker.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    monitor = val_runs or train_runs
    best, best_state, curve = -1.0, copy.deepcopy(ranker.state_dict()), []
    running = 0.0
    bar = tqdm(range(1, cfg.steps + 1), desc="ranker", disable=None, leave=False)
    for step in bar:
        x, y = _sample_groups(train_runs, cfg, gen)
        loss = listnet_loss(ranker(x.reshape(-1, x.shape[-1])).reshape(y.shape), y, cfg.label_base)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            metrics = evaluate_ranker(ranker, monitor, cfg)
            curve.append({"step": step, "loss": running, **{f"val_{k}": v for k, v in metrics.items()}})
            bar.set_postfix(loss=f"{running:.3f}", prec=f"{metrics['precision']:.3f}")
            if metrics["precision"] > best:
                best, best_state = metrics["precision"], copy.deepcopy(ranker.state_dict())
    ranker.load_state_dict(best_state)
    return ranker, curve


def train_allocator(train_runs: list[RunSamples], cfg: ScorerConfig, *, target: str = "density") -> Allocator:
    """Fit a layer-level head: ``density`` = log(layer / global density) (the allocator), ``units`` =
    log(fraction of output units IMP keeps alive) (the unit head); same inputs, same recipe."""
    torch.manual_seed(cfg.seed)
    x, y = allocator_rows(train_runs) if target == "density" else unit_rows(train_runs)
    alloc = Allocator(cfg.allocator_features, cfg.alloc_hidden)
    alloc.set_normalisation(x.mean(0), x.std(0))
    opt = torch.optim.AdamW(alloc.parameters(), lr=cfg.alloc_lr, weight_decay=cfg.alloc_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.alloc_steps)
    for _ in tqdm(range(cfg.alloc_steps), desc=f"{target} head", disable=None, leave=False):
        loss = F.mse_loss(alloc(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return alloc


def evaluate_scorer(
    score_run: Callable[[RunSamples], list[torch.Tensor]], alloc: Allocator, runs: list[RunSamples], cfg: ScorerConfig
) -> dict[str, Any]:
    """Per held-out run: ranking, allocation and full-mask metrics, plus baseline rankers.

    ``score_run(run)`` gives the ranker's scores of every weight of the run, one tensor per layer
    (for the MLP: :func:`mlp_score_run`; the GNN supplies its own).
    """
    from autosparse.core.allocation import counts_from_shares

    report: dict[str, Any] = {}
    for run in runs:
        labels = [
            run.full_label[_slice(run, i)] if run.full_label is not None else g.label for i, g in enumerate(run.groups)
        ]
        scores = score_run(run)
        rounds = list(range(1, len(run.densities)))
        per = {"spearman": spearman_within_layers(scores, labels), "rounds": {}}
        for r in rounds:
            d = run.densities[r]
            x = torch.cat([run.layer_feats, torch.full((len(run.groups), 1), math.log(d))], dim=1)
            with torch.no_grad():
                pred = (alloc(x).exp() * d).clamp(max=1.0).tolist()
            numel = run.layer_numel.tolist()
            shapes = {str(i): torch.Size([n]) for i, n in enumerate(numel)}
            counts = counts_from_shares(shapes, d, {str(i): p * n for i, (p, n) in enumerate(zip(pred, numel))})
            row = {
                "density": d,
                "precision": precision_at_round(scores, labels, r),
                "random_precision": random_precision(labels, r),
                "alloc_log_error": alloc_log_error(pred, run.layer_densities[r], numel),
                "mask_overlap": mask_overlap(scores, [counts[str(i)] for i in range(len(numel))], labels, r),
            }
            for name, feat in BASELINE_RANKERS.items():
                if feat in run.extra_features:
                    bscores = [run.extra_features[feat][_slice(run, i)] for i in range(len(run.groups))]
                    row[f"precision_{name}"] = precision_at_round(bscores, labels, r)
            per["rounds"][str(r)] = row
        for name, feat in BASELINE_RANKERS.items():
            if feat in run.extra_features:
                bscores = [run.extra_features[feat][_slice(run, i)] for i in range(len(run.groups))]
                per[f"spearman_{name}"] = spearman_within_layers(bscores, labels)
        report[run.run_id] = per
    return report


def _slice(run: RunSamples, i: int) -> slice:
    off = int(run.layer_numel[:i].sum())
    return slice(off, off + int(run.layer_numel[i]))


def mlp_score_run(ranker: torch.nn.Module, run: RunSamples) -> list[torch.Tensor]:
    if run.full_features is None:
        return _layer_scores(ranker, run)
    with torch.no_grad():
        out = []
        for i in range(len(run.groups)):
            x = run.full_features[_slice(run, i)]
            out.append(torch.cat([ranker(x[s : s + 65536]) for s in range(0, len(x), 65536)]))
        return out


def train_scorer(
    store: str | Path,
    *,
    holdout: str | None,
    out: str | Path,
    config: ScorerConfig | None = None,
    name: str | None = None,
    command: str | None = None,
) -> TrainedScorer:
    """Train a scorer on the store's runs not matched by ``holdout``; write it to ``out``."""
    cfg = config or ScorerConfig()
    start = time.perf_counter()
    train_reader, val_reader = open_split(str(store), holdout)
    baseline_feats = tuple(f for f in BASELINE_RANKERS.values())
    train_runs = load_samples(
        train_reader, cfg.ranker_features, cfg.allocator_features, max_per_layer=cfg.max_per_layer, seed=cfg.seed
    )
    val_runs = (
        load_samples(
            val_reader, cfg.ranker_features, cfg.allocator_features, keep_full=True, baseline_features=baseline_feats
        )
        if val_reader is not None
        else []
    )
    log.info("training on %d runs, validating on %d held-out runs", len(train_runs), len(val_runs))
    if cfg.arch == "gnn":
        from autosparse.scorer.gnn import train_gnn_ranker

        ranker, curve = train_gnn_ranker(train_reader, val_reader, cfg)
    else:
        ranker, curve = train_ranker(train_runs, val_runs, cfg)
    alloc = train_allocator(train_runs, cfg)
    units = train_allocator(train_runs, cfg, target="units") if cfg.unit_head else None
    metrics: dict[str, Any] = {}
    if val_runs:
        if cfg.arch == "gnn":
            from autosparse.scorer.gnn import gnn_score_run

            metrics = evaluate_scorer(lambda run: gnn_score_run(ranker, val_reader, run), alloc, val_runs, cfg)
        else:
            metrics = evaluate_scorer(lambda run: mlp_score_run(ranker, run), alloc, val_runs, cfg)
    name = name or Path(out).name
    card = Card(
        name=name,
        arch=cfg.arch,
        schema_version=SCHEMA_VERSION,
        ranker={"features": list(cfg.ranker_features), "hidden": list(cfg.hidden), **_gnn_meta(cfg)},
        allocator={"features": list(cfg.allocator_features), "hidden": list(cfg.alloc_hidden)},
        normalisation={},
        training={
            "store": str(store),
            "holdout": holdout,
            "train_runs": train_reader.run_ids,
            "val_runs": val_reader.run_ids if val_reader is not None else [],
            "config": to_dict(cfg),
            "command": command or " ".join(shlex.quote(a) for a in sys.argv),
            "seconds": round(time.perf_counter() - start, 1),
            "curve": curve,
        },
        metrics=metrics,
        units=_unit_card(units, cfg.allocator_features, cfg.alloc_hidden, cfg.unit_scale, val_runs) if units else {},
    )
    tensors = {f"ranker.{k}": v for k, v in ranker.state_dict().items()}
    tensors.update({f"allocator.{k}": v for k, v in alloc.state_dict().items()})
    if units is not None:
        tensors.update({f"units.{k}": v for k, v in units.state_dict().items()})
    save_checkpoint(out, tensors, card)
    _plot_curve(curve, Path(out) / "training_curve.png")
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return TrainedScorer(ranker, alloc, card, curve)


def _unit_card(
    units: Allocator, features: Sequence[str], hidden: Sequence[int], scale: float, val_runs: list[RunSamples]
) -> dict[str, Any]:
    """The card's ``units`` entry: what rebuilds the head, its prune-time scale, its held-out error."""
    return {
        "features": list(features),
        "hidden": list(hidden),
        "heldout": unit_head_metrics(units, val_runs),
        "scale": scale,
    }


def unit_head_metrics(units: Allocator, runs: list[RunSamples]) -> dict[str, float]:
    """Held-out mean |log(predicted / IMP's alive-unit fraction)| over layers and rounds."""
    if not runs:
        return {}
    x, y = unit_rows(runs)
    with torch.no_grad():
        err = (units(x) - y).abs()
    return {"unit_log_error": float(err.mean()), "rows": int(len(y))}


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
    from autosparse.scorer.checkpoint import load_checkpoint, resolve_scorer

    directory = resolve_scorer(scorer)
    card, tensors = load_checkpoint(directory)
    fields = ScorerConfig.__dataclass_fields__
    cfg = config or ScorerConfig(**{k: v for k, v in card.training.get("config", {}).items() if k in fields})
    train_ids = list(card.training.get("train_runs", []))
    val_ids = list(card.training.get("val_runs", []))
    reader, _ = open_split(str(store), None)
    missing = sorted(set(train_ids + val_ids) - set(reader.run_ids))
    if missing:
        raise StoreError(
            f"{store} lacks {len(missing)} of the scorer's runs (e.g. {missing[0]}); pass the store it was trained on"
        )
    runs = load_samples(reader, (), card.allocator["features"], max_per_layer=1, seed=cfg.seed)
    by_id = {r.run_id: r for r in runs}
    units = train_allocator([by_id[i] for i in train_ids], cfg, target="units")
    tensors = {k: v for k, v in tensors.items() if not k.startswith("units.")}
    tensors.update({f"units.{k}": v for k, v in units.state_dict().items()})
    card.units = _unit_card(units, card.allocator["features"], cfg.alloc_hidden, scale, [by_id[i] for i in val_ids])
    card.training["unit_head_command"] = (
        f"autosparse train-scorer --add-unit-head --unit-scale {scale:g} --store {store} --out {directory}"
    )
    save_checkpoint(directory, tensors, card)
    return card


def _gnn_meta(cfg: ScorerConfig) -> dict[str, Any]:
    if cfg.arch != "gnn":
        return {}
    from autosparse.scorer.gnn import gnn_card_meta

    return gnn_card_meta(cfg)


def _plot_curve(curve: list[dict[str, float]], path: Path) -> None:
    if not curve:
        return
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
