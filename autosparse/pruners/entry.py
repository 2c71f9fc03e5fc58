"""``prune``: the one way a caller's model goes through a method.

The method only answers which weights to keep; everything a caller must be able to rely on
whatever the method — a valid density, data when the method needs it, an untouched model, a
seed that fixes the mask without consuming the caller's random stream, an exact kept count,
the timing the bench reports — is enforced here once.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import check_density
from autosparse.core.init_transform import InitTransform, fingerprint, rescale_factors
from autosparse.core.layers import prunable_layers, safe_deepcopy
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.inputs import require_data
from autosparse.pruners.registry import PrunerConfig, make_pruner


@dataclass
class PruneResult:
    masks: Masks
    seconds: float
    method: str
    config: dict[str, Any] = field(default_factory=dict)


def prune(
    model: nn.Module,
    method: str,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    data: Any = None,
    seed: int = 0,
    apply: bool = False,
    config: PrunerConfig | Mapping[str, Any] | None = None,
    **hparams: Any,
) -> Masks:
    """Prune ``model`` at initialisation with a registered ``method``.

    Returns masks keeping exactly ``round(density * total)`` weights. With ``apply=True`` the
    masks are also attached to ``model`` (torch ``weight_orig``/``weight_mask``); otherwise
    the model is left untouched.
    """
    return prune_timed(
        model, method, density=density, sparsity=sparsity, data=data, seed=seed, apply=apply, config=config, **hparams
    ).masks


def prune_timed(
    model: nn.Module,
    method: str,
    *,
    density: float | None = None,
    sparsity: float | None = None,
    data: Any = None,
    seed: int = 0,
    apply: bool = False,
    config: PrunerConfig | Mapping[str, Any] | None = None,
    **hparams: Any,
) -> PruneResult:
    """:func:`prune` that also reports the wall time spent computing the mask."""
    d = check_density(density, sparsity)
    pruner = make_pruner(method, config, **hparams)
    prunable_layers(model)  # fail early and clearly on a model with nothing to prune
    pdata = require_data(data, method) if pruner.data_dependent else PruningData.coerce(data)
    work = safe_deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        start = time.perf_counter()
        masks = pruner.masks(work, pdata, d, seed=seed)
        seconds = time.perf_counter() - start
    masks = Masks(
        masks.to_dict(),
        meta={**masks.meta, "method": method, "density": d, "seed": seed},
        init=_init_transform(model, masks, pruner.config),
    )
    masks.validate(model)
    if apply:
        masks.apply(model)
    return PruneResult(masks, seconds, method, dataclasses.asdict(pruner.config))


def _init_transform(model: nn.Module, masks: Masks, config: PrunerConfig) -> InitTransform | None:
    """What the masks change in θ0: the method's own (e.g. robust's branch scales) plus the
    rescaling when the config asks for it, fingerprinted on the caller's θ0."""
    own = masks.init
    if not config.rescale and not own:
        return None
    factors = rescale_factors(model, masks, config.rescale_granularity) if config.rescale else {}
    return InitTransform(
        factors=factors,
        branch_scale=dict(own.branch_scale) if own else {},
        fingerprint=fingerprint(model),
        granularity=config.rescale_granularity if config.rescale else "",
    )
