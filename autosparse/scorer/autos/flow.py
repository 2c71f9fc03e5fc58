"""Chaining the learned choice: re-select each layer's kept weights by the path flow they carry.

Why: the ranker scores every weight once and independently, so at extreme density the weights
it keeps in consecutive layers need not meet — a kept weight into channel 7 is worth nothing if
no kept weight reads channel 7. SynFlow avoids that by iterating: it scores each weight by the
|θ|-weighted path flow through it, prunes a little, and re-scores, so survivors chain into
paths. ``flow_rounds`` runs that iteration with the learned within-layer percentile in place of
|θ| (the prior: which weights the ranker would keep) and the learned allocation's per-layer
counts (each layer shrinks geometrically to its count), so the result keeps the learned
allocation and the learned preferences where they chain.

An ablation, off by default: on the validation VGG-11 under SynFlow's counts it brought the
learned ranker to SynFlow's accuracy, never above it, and under the learned counts it cost on
every other validation shape (Conv-4 trained to chance) — docs/SCORER.md, "Chaining the learned
choice".
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from autosparse.core.allocation import topk_mask
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.core.ranking import pct_rank
from autosparse.topology.paths import PathNetwork


def flow_priors(kind: str, scores: Mapping[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Edge values of the flow: the learned within-layer percentile, or |θ| (SynFlow's own)."""
    if kind == "magnitude":  # on the CPU, where the masks are
        return {layer.name: layer.weight.detach().abs().to("cpu", torch.float64) for layer in prunable_layers(model)}
    return {n: pct_rank(s).reshape(s.shape).to(torch.float64) for n, s in scores.items()}


def flow_refine(
    net: PathNetwork,
    masks: Masks,
    prior: Mapping[str, torch.Tensor],
    rounds: int,
    allowed: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """``masks`` with each layer's weights re-chosen over ``rounds`` rounds of prior-weighted path
    flow; every layer ends with exactly the count it had. ``allowed`` (per layer, broadcastable
    boolean) limits a layer to positions it may keep (the unit head's chosen output units, the
    survivors of earlier rounds); a layer whose allowed positions are fewer than its count is not
    limited (its count comes first)."""
    names = list(masks)
    prior = {n: prior[n].reshape(masks[n].shape) for n in names}
    final = {n: int(masks[n].sum()) for n in names}
    current = {}
    for n in names:
        limit = allowed[n].expand_as(masks[n]) if allowed and n in allowed else None
        current[n] = limit.clone() if limit is not None and int(limit.sum()) >= final[n] else torch.ones_like(masks[n])
    start = {n: int(current[n].sum()) for n in names}
    order = {n: pct_rank(prior[n]).reshape(masks[n].shape).to(torch.float64) for n in names}  # in [0, 1]
    for r in range(1, rounds + 1):
        flow = net.flow({n: prior[n] * current[n] for n in names})
        for n in names:
            k = final[n]
            if r < rounds and start[n] > 0 and final[n] > 0:
                k = max(final[n], round(start[n] * (final[n] / start[n]) ** (r / rounds)))
            current[n] = topk_mask(_key(flow.weight_log_paths[n], order[n], current[n]), k)
    return Masks(current, meta=dict(masks.meta))


def _key(log_flow: torch.Tensor, order: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Selection key: the log flow where a kept weight carries some; below every such weight, the
    kept weights off every path by their prior's percentile ``order`` (in [0, 1], so they stay
    below: a layer short of on-path weights keeps its best ranked); pruned positions never come
    back (the count never grows, so a top-k never needs them)."""
    flow = log_flow.to(torch.float64).reshape(current.shape)
    on = torch.isfinite(flow) & current
    floor = float(flow[on].min()) if bool(on.any()) else 0.0
    key = torch.where(on, flow, floor - 2.0 + order)
    return torch.where(current, key, torch.tensor(float("-inf"), dtype=torch.float64))
