"""Make any score function iterative.

SynFlow, iterative SNIP and NTK-SAP all prune in rounds: score, remove a little, re-score the
thinned network. They differ only in the score, so the rounds live here once: densities follow
an exponential (d_r = d^(r/R), SynFlow's schedule) or linear schedule, weights pruned in an
earlier round stay pruned, and each round's masks come from the shared exact-count allocation.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from autosparse.core.allocation import Scope, allocate
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks

Schedule = Literal["exp", "linear"]
ScoreFn = Callable[[nn.Module, Masks | None], dict[str, torch.Tensor]]


def check_schedule(rounds: int, schedule: str) -> None:
    """Reject a bad ``rounds``/``schedule`` when a config is built, not rounds into a pruning run."""
    if int(rounds) != rounds or rounds < 1:
        raise ConfigError(f"rounds must be a positive integer, got {rounds}")
    if schedule not in ("exp", "linear"):
        raise ConfigError(f"unknown schedule {schedule!r}; use 'exp' or 'linear'")


def schedule_densities(density: float, rounds: int, schedule: Schedule = "exp") -> list[float]:
    """Target density after each round; the last one is exactly ``density``."""
    if rounds < 1:
        raise ConfigError(f"rounds must be >= 1, got {rounds}")
    if schedule == "exp":
        out = [density ** ((r + 1) / rounds) for r in range(rounds)]
    elif schedule == "linear":
        out = [1.0 - (1.0 - density) * (r + 1) / rounds for r in range(rounds)]
    else:
        raise ConfigError(f"unknown schedule {schedule!r}; use 'exp' or 'linear'")
    out[-1] = density
    return out


@contextmanager
def masked_weights(model: nn.Module, masks: Masks | None):
    """Temporarily zero pruned weights in place (restored on exit).

    Zeroing rather than attaching torch pruning hooks keeps the score functions simple: they
    see an ordinary model whose pruned weights are exactly zero, as in the reference code.
    """
    if masks is None:
        yield model
        return
    saved = {}
    with torch.no_grad():
        for layer in prunable_layers(model):
            p = layer.parameter
            saved[layer.name] = p.detach().clone()
            p.mul_(masks[layer.name].to(device=p.device, dtype=p.dtype))
    try:
        yield model
    finally:
        with torch.no_grad():
            for layer in prunable_layers(model):
                layer.parameter.copy_(saved[layer.name])


def iterate(
    score_fn: ScoreFn,
    model: nn.Module,
    density: float,
    rounds: int,
    *,
    schedule: Schedule = "exp",
    scope: Scope = "global",
    desc: str = "pruning rounds",
) -> Masks:
    """Prune in ``rounds`` steps; ``score_fn(model_with_pruned_weights_zeroed, masks)``."""
    masks: Masks | None = None
    for d in tqdm(schedule_densities(density, rounds, schedule), desc=desc, leave=False, disable=None):
        with masked_weights(model, masks):
            scores = score_fn(model, masks)
        if masks is not None:
            scores = {
                n: torch.where(
                    masks[n].to(s.device), s.to(torch.float64), torch.tensor(-torch.inf, dtype=torch.float64)
                )
                for n, s in scores.items()
            }
        masks = allocate(scores, d, scope=scope)
    assert masks is not None
    return masks
