"""The layer-level heads: the allocator (how many weights per layer) and the unit head (how many units).

Allocator loss: squared error of log(layer density / global density) against IMP's layer
densities at every round of every training run. The unit head is the same network and recipe on
another target, log(fraction of output units IMP keeps alive). Neither looks at single weights,
so neither depends on the ranker's architecture: both are trained here, once, for every scorer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from autosparse.scorer.config import ScorerConfig
from autosparse.scorer.data import RunSamples, allocator_rows, unit_rows
from autosparse.scorer.nets import Allocator, AllocatorEnsemble, LayerHead


def train_allocators(train_runs: list[RunSamples], cfg: ScorerConfig) -> LayerHead:
    """The allocator: one network (``alloc_members`` 1), or the mean of ``alloc_members`` trained
    from seeds ``seed``, ``seed + 1``, … (:class:`AllocatorEnsemble` says why). Member ``i`` is the
    allocator a single-member training with ``seed + i`` would give."""
    members = [
        train_allocator(train_runs, cfg, seed=cfg.seed + i, label=f" {i + 1}/{cfg.alloc_members}")
        for i in range(cfg.alloc_members)
    ]
    return members[0] if len(members) == 1 else AllocatorEnsemble(members)


def train_allocator(
    train_runs: list[RunSamples],
    cfg: ScorerConfig,
    *,
    target: Literal["density", "units"] = "density",
    seed: int | None = None,
    label: str = "",
) -> Allocator:
    """Fit a layer-level head: ``density`` = log(layer / global density) (the allocator), ``units`` =
    log(fraction of output units IMP keeps alive) (the unit head); same inputs, same recipe.
    ``seed`` (default ``cfg.seed``) draws the initial weights: the rows are all the data, used whole."""
    torch.manual_seed(cfg.seed if seed is None else seed)
    x, y = allocator_rows(train_runs) if target == "density" else unit_rows(train_runs)
    alloc = Allocator(cfg.allocator_features, cfg.alloc_hidden)
    alloc.set_normalisation(x.mean(0), x.std(0))
    opt = torch.optim.AdamW(alloc.parameters(), lr=cfg.alloc_lr, weight_decay=cfg.alloc_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.alloc_steps)
    for _ in tqdm(range(cfg.alloc_steps), desc=f"{target} head{label}", disable=None, leave=False):
        loss = F.mse_loss(alloc(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return alloc


def unit_card(
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
