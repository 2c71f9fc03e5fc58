"""The one loop that fits a ranker, whatever its architecture.

Ranker loss (within layer, top-heavy): for a random group of one layer's weights, the target
distribution is softmax(label · log base) — a weight that survived one more IRP round counts
``base`` times more — and the loss is its cross-entropy with softmax(score) (ListNet). Only
relative scores inside a layer matter, which is exactly how the score is used (ranking, then a
top-k per layer), and survivors of late rounds — the weights kept at ≥99% sparsity — dominate.

Early stopping keeps the ranker state with the best held-out precision at the extreme rounds
(rounds at or below ``eval_min_round_density``), evaluated every ``eval_every`` steps and at the end.
What differs between architectures (how a batch is sampled and scored, what is kept of each run)
is the :class:`~autosparse.scorer.archs.base.Arch`'s; the seed, optimiser, schedule, curve and
best-state bookkeeping are here once, so an MLP and a GNN trained with the same config are
trained the same way.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from autosparse.scorer.archs.base import Arch, TrainingSplit
from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.metrics import precision_at_round, spearman_within_layers

log = logging.getLogger(__name__)


def listnet_loss(scores: torch.Tensor, labels: torch.Tensor, base: float) -> torch.Tensor:
    """(G, m) scores and labels -> mean over groups of CE(softmax(label·log base), softmax(score))."""
    target = torch.softmax(labels.float() * math.log(base), dim=1)
    return -(target * torch.log_softmax(scores, dim=1)).sum(1).mean()


def eval_rounds(densities: Sequence[float], min_density: float) -> list[int]:
    """The IRP rounds early stopping scores: those at or below ``min_density`` (else the last one)."""
    rounds = [r for r in range(1, len(densities)) if densities[r] <= min_density]
    return rounds or [len(densities) - 1]


def evaluate_ranker(arch: Arch, ranker: nn.Module, items: Sequence[Any], cfg: ScorerConfig) -> dict[str, float]:
    """Mean precision at the extreme rounds and mean within-layer Spearman over ``items`` (an arch's monitor)."""
    precs, rhos = [], []
    for item in items:
        scores, labels = arch.monitor_scores(ranker, item)
        rhos.append(spearman_within_layers(scores, labels))
        precs.extend(
            precision_at_round(scores, labels, r) for r in eval_rounds(item.densities, cfg.eval_min_round_density)
        )
    return {"precision": float(np.nanmean(precs)), "spearman": float(np.nanmean(rhos))}


def fit_ranker(arch: Arch, split: TrainingSplit, cfg: ScorerConfig) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train ``arch``'s ranker on the split; return it in eval mode at its best state, and the curve."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    ranker = arch.new_ranker(cfg)
    data = arch.training_data(ranker, split, cfg)
    opt = torch.optim.AdamW(ranker.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    best, best_state, curve = -1.0, copy.deepcopy(ranker.state_dict()), []
    running = 0.0
    bar = tqdm(range(1, cfg.steps + 1), desc=f"{arch.name} ranker", disable=None, leave=False)
    for step in bar:
        ranker.train()
        scores, labels = arch.sample_batch(ranker, data.train, cfg, gen)
        loss = listnet_loss(scores, labels, cfg.label_base)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ranker.eval()
            metrics = evaluate_ranker(arch, ranker, data.monitor, cfg)
            curve.append({"step": step, "loss": running, **{f"val_{k}": v for k, v in metrics.items()}})
            bar.set_postfix(loss=f"{running:.3f}", prec=f"{metrics['precision']:.3f}")
            if bar.disable:  # no terminal to draw the bar on (a pipe, a log file): one line per evaluation
                log.info(
                    "%s ranker step %d/%d: loss %.3f, %s precision %.3f",
                    arch.name,
                    step,
                    cfg.steps,
                    running,
                    "held-out" if split.val_runs else "training-run",
                    metrics["precision"],
                )
            if metrics["precision"] > best:
                best, best_state = metrics["precision"], copy.deepcopy(ranker.state_dict())
    ranker.load_state_dict(best_state)
    ranker.eval()
    return ranker, curve
