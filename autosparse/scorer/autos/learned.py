"""The learned mask: features at θ0, the ranker within each layer, the allocator's (range-guarded)
counts across layers, the unit head's alive units, then the connectivity repair.

``rounds > 1`` re-measures the mask-dependent features (unit degrees, layer density) on the
thinned network between rounds, the way SynFlow iterates; the default is one shot. The helpers
below are the ablation knobs of docs/SCORER.md (SynFlow-blended ranking, an ERK floor, units).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

import torch

from autosparse.core.allocation import allocate, counts_from_shares, erk_densities, masks_from_counts, target_count
from autosparse.core.masks import Masks
from autosparse.core.parallel import single_threaded_torch
from autosparse.core.ranking import pct_rank
from autosparse.features import FeatureTable, compute_features
from autosparse.pruners.iterate import schedule_densities
from autosparse.scorer.autos.call import Call
from autosparse.scorer.autos.flow import flow_priors, flow_refine
from autosparse.scorer.autos.guards import range_guard
from autosparse.topology.connectivity import repair_with_flow

log = logging.getLogger(__name__)


def learned_masks(call: Call, *, force: bool = False) -> Masks:
    """The learned mask at ``call.density``; ``force`` gives every layer the guard's allocation
    (the ``collapse="guard"`` fallback) under the learned ranker. Leaves the learned scores on
    ``call.scores`` and the repair's last path measurement in ``call.paths``."""
    cfg, scorer, data = call.cfg, call.scorer, call.data
    masks: Masks | None = None
    restricted: set[str] = set()  # layers whose alive units the unit head chose
    guarded: dict[str, float] = {}  # layers out of the scorer's range -> their distance to the sources
    spent = {"features": 0.0, "scorer": 0.0, "allocation": 0.0, "repair": 0.0}  # -v: where the time went
    clock = time.perf_counter()
    for d in schedule_densities(call.density, cfg.rounds, "exp"):
        # the gradient and SynFlow passes use torch's threads, as SNIP's does; what follows is
        # many medium ops whose intra-op threads stall each other on a loaded machine, so it
        # runs single-threaded, parallel over layers and blocks instead (see map_layers)
        names = scorer.features
        if cfg.synflow_mix > 0 and "synflow_rank" not in names:
            names = (*names, "synflow_rank")
        table = compute_features(call.model, data, names=names, masks=masks, seed=call.seed)
        clock = _lap(spent, "features", clock)
        with single_threaded_torch():
            scores = scorer.score_layers(table, call.model, call.shape or None)
            clock = _lap(spent, "scorer", clock)
            if cfg.synflow_mix > 0:
                scores = mix_synflow(scores, table, cfg.synflow_mix)
            if masks is not None:  # what an earlier round pruned stays pruned
                scores = {n: torch.where(masks[n], s, torch.tensor(float("-inf"))) for n, s in scores.items()}
            if cfg.allocation in ("learned", "synflow"):
                shapes = {lf.name: torch.Size(lf.shape) for lf in table.layers}
                dens = scorer.layer_densities(table, d)
                # allocation=synflow: every layer gets SynFlow's share (the guard's rule, forced)
                borrowed = cfg.allocation == "synflow"
                outside = range_guard(call, table, d, dens, force=force or borrowed, rule="synflow" if borrowed else "")
                if not borrowed:
                    guarded.update(outside)
                if cfg.erk_floor > 0:
                    dens = erk_floor(table, shapes, d, dens, cfg.erk_floor)
                shares = {lf.name: p * lf.numel for lf, p in zip(table.layers, dens)}
                shares = _guarded_shares(shares, outside, d * sum(lf.numel for lf in table.layers))
                caps = {n: int(m.sum()) for n, m in masks.items()} if masks is not None else None
                if call.shape and (unused := call.paths.network.unreached):
                    caps = _cap_unreached(shapes, d, caps, unused)
                counts = counts_from_shares(shapes, d, shares, caps=_guard_caps(shapes, d, shares, outside, caps))
                scale = cfg.unit_scale or None
                fractions = scorer.unit_fractions(table, d, scale) if cfg.units != "off" else None
                units = (
                    unit_budget(table, fractions, outside, convs=cfg.units == "all") if fractions is not None else None
                )
                masks = masks_from_counts(scores, counts, units)
                restricted = {n for n, u in (units or {}).items() if u < shapes[n][0]}
            else:
                masks = allocate(scores, d, scope=cfg.allocation)  # type: ignore[arg-type]
            clock = _lap(spent, "allocation", clock)
    assert masks is not None
    call.scores = scores  # the SynFlow fallback's mend chooses by them
    moved: list[int] = []
    prefer = {  # mend paths inside the chosen units rather than reviving others
        n: m.reshape(m.shape[0], -1).any(1).reshape(-1, *([1] * (m.dim() - 1)))
        for n, m in masks.items()
        if n in restricted
    }
    if cfg.flow_rounds > 0 and call.shape:
        prior = flow_priors(cfg.flow_prior, scores, call.model)
        # within the chosen units, and never a weight an earlier round pruned (scored -inf)
        allowed = {n: prefer[n] & torch.isfinite(s) if n in prefer else torch.isfinite(s) for n, s in scores.items()}
        masks = flow_refine(call.paths.network, masks, prior, cfg.flow_rounds, allowed)
    if cfg.repair > 0 and call.shape:
        # batch-1 float64 passes: small ops, single-threaded inside PathNetwork (see above)
        masks, moved, flow = repair_with_flow(
            call.paths.network, masks, scores, iterations=cfg.repair, prefer=prefer or None, rehome=cfg.rehome
        )
    else:
        flow = None
    _lap(spent, "repair", clock)
    log.debug("autos (%s): %s", cfg.scorer, ", ".join(f"{k} {v:.2f}s" for k, v in spent.items()))
    # the unit head acts on the learned allocation only: a classic one recorded units it never applied (helper)
    units_applied = cfg.units if cfg.allocation == "learned" and not force else "off"  # force: every layer guarded
    meta = {"scorer": cfg.scorer, "allocation": cfg.allocation, "units": units_applied, "repaired": moved}
    meta["stage_seconds"] = {k: round(v, 4) for k, v in spent.items()}  # the speed bench reports them
    if guarded:
        meta["guard"] = {"fallback": cfg.guard, "layers": sorted(guarded), "distances": guarded, "reason": "range"}
    out = Masks(masks.to_dict(), meta=meta)
    call.paths.remember(out, flow)
    return out


def _cap_unreached(
    shapes: Mapping[str, torch.Size], density: float, caps: Mapping[str, int] | None, unused: list[str]
) -> dict[str, int]:
    """Caps that keep layers the forward never calls to one weight each (every layer keeps one).

    Why: no path crosses them, so their share is wasted, and the learned allocation gave an unused
    1000-way head 85% of a small net's budget; SNIP's zero gradient gives it nothing. Only when the
    used layers cannot hold the budget do the unused ones take the rest, in proportion to size.
    """
    out = dict(caps) if caps is not None else {n: shapes[n].numel() for n in shapes}
    need = target_count(sum(s.numel() for s in shapes.values()), density)
    room = sum(c for n, c in out.items() if n not in unused)
    extra = max(0, need - room - len(unused))
    size = sum(out[n] for n in unused)
    for n in unused:
        out[n] = min(out[n], 1 + math.ceil(extra * out[n] / size)) if size else out[n]
    return out


def _lap(spent: dict[str, float], stage: str, since: float) -> float:
    """Add the time since ``since`` to ``stage``; the new start (for ``-v``'s per-stage line)."""
    now = time.perf_counter()
    spent[stage] += now - since
    return now


def mix_synflow(scores: dict[str, torch.Tensor], table: FeatureTable, mix: float) -> dict[str, torch.Tensor]:
    """Within each layer, ``(1 - mix)`` × the learned percentile + ``mix`` × SynFlow's.

    Why: the ranker imitates IMP, and on deep plain nets at extreme density IMP's own masks
    disconnect; SynFlow's order keeps a few channels well connected end to end. Percentiles put
    both on one scale, and only the order within a layer changes (the allocation is untouched).
    """
    out = {}
    for lf in table.layers:
        s = scores[lf.name]
        learned = pct_rank(s)
        out[lf.name] = ((1.0 - mix) * learned + mix * lf.weight["synflow_rank"]).reshape(s.shape)
    return out


def _guarded_shares(shares: dict[str, float], outside: Mapping[str, float], budget: float) -> dict[str, float]:
    """Budget shares in which the range guard's layers keep their fallback density as a count, and the
    other layers split the rest by the learned prediction.

    Why: the guard wrote ERK's *absolute* density for its layers next to the allocator's raw
    predictions, whose sum on an unseen net is off the budget (2.7x on torchvision ResNet-18, 11x for
    the MLP-only scorer on LeNet-5); normalising them together gave the guarded layers ERK's density
    divided by that factor — LeNet-5's first conv one weight of 150 where ERK keeps 12, a mask with
    no path (review)."""
    fixed = sum(v for n, v in shares.items() if n in outside)
    free = sum(v for n, v in shares.items() if n not in outside)
    if not outside or free <= 0 or fixed >= budget:
        return shares  # none guarded, all guarded (ERK's counts fill the budget), or the guard's take all of it
    scale = (budget - fixed) / free
    return {n: v if n in outside else v * scale for n, v in shares.items()}


def _guard_caps(
    shapes: Mapping[str, torch.Size],
    density: float,
    shares: Mapping[str, float],
    outside: Mapping[str, float],
    caps: Mapping[str, int] | None,
) -> dict[str, int] | None:
    """``caps`` with each guarded layer held to its fallback count, where the other layers can take the
    rest: a free layer filled to its size spilled its surplus over every layer, so a guarded one
    ended above ERK's count (review). Left as given when the free layers cannot hold the rest."""
    if not outside:
        return dict(caps) if caps is not None else None
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    held = {n: min(sizes[n], caps[n]) if caps is not None else sizes[n] for n in sizes}
    for n in outside:
        held[n] = min(held[n], max(1, math.ceil(shares[n])))
    return held if sum(held.values()) >= target_count(sum(sizes.values()), density) else (dict(caps) if caps else None)


def erk_floor(
    table: FeatureTable, shapes: Mapping[str, torch.Size], density: float, dens: list[float], floor: float
) -> list[float]:
    """Raise every layer's learned density to at least ``floor`` × ERK's for it.

    Why: past the densities where the sources' IMP runs stayed healthy, the learned allocation
    keeps following IMP's trend of starving the deep layers of plain nets (VGG-11: its last three
    convs at 0.05-0.16 × ERK at 99%), the trend that collapsed IMP itself there.
    """
    erk = erk_densities(shapes, density)
    return [max(p, floor * erk[lf.name]) for lf, p in zip(table.layers, dens, strict=True)]


def unit_budget(
    table: FeatureTable, fractions: list[float], outside: Mapping[str, float] | None = None, *, convs: bool = False
) -> dict[str, int]:
    """Output units to keep alive per layer: the unit head's share for hidden linear layers (and
    convolutions with ``convs``, ``units="all"``).

    The last layer's units are the network's outputs (classes) and are never dropped, nor are a
    layer's whose descriptors are out of the scorer's range (the head would extrapolate there).
    Convolutions keep every channel by default: IMP keeps nearly all channels of a conv alive at
    0.8% density on Conv-2/4/6 (docs/SCORER.md), and a channel budget per conv without the
    matching input side left most of a ResNet-18 mask dead with the MLP-only head.
    """
    last = table.output_layer or table.layers[-1].name  # from the forward: a head registered first is still the head
    return {
        lf.name: round(f * lf.shape[0])
        if (lf.kind == "linear" or (convs and lf.kind == "conv")) and lf.name != last and lf.name not in (outside or {})
        else lf.shape[0]
        for lf, f in zip(table.layers, fractions, strict=True)
    }
