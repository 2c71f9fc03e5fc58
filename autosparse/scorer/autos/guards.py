"""Where ``autos`` knows it is extrapolating, and what it does instead (docs/SCORER.md).

* **Range guard** — layers whose descriptors lie far from every source layer the allocator was
  trained on (the scorer card's coverage) get a safe allocation rule's density (ERK's, or
  SynFlow's per-layer share); the learned ranker still chooses their weights.
* **Density guard** — where the card's evidence says SynFlow's masks trained more than a margin
  above IMP's on the nearest sources of the network's kind at this density (the teacher failed
  there), SynFlow's own mask.
* **Student guard** — where the card's student evidence says SynFlow's masks trained more than a
  margin above this scorer's own learned masks on validation nets of the target's kind
  (plain conv, plain, residual) at nearby densities, SynFlow's own mask.
* **SynFlow fallback** — SynFlow's mask with meta saying why, mended when SynFlow itself left a
  layer empty or off every path. The collapse check (a learned allocation with no input→output
  path) uses it too; its order with the learned mask is the pruner's (:mod:`.pruner`).

Each warns once per scorer, density and network (its layer set), so a bench grid prints each reason once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import torch

from autosparse.core.allocation import counts_from_shares, erk_densities, masks_from_counts
from autosparse.core.masks import Masks
from autosparse.core.model_io import is_shape_error
from autosparse.core.ranking import pct_rank
from autosparse.core.text import name_list
from autosparse.features import FeatureTable, compute_features
from autosparse.scorer.autos.call import Call
from autosparse.scorer.evidence import Verdict
from autosparse.scorer.student import StudentVerdict
from autosparse.topology.connectivity import repair_with_flow
from autosparse.topology.merges import ProbeError

log = logging.getLogger("autosparse.scorer.autos")  # the method's own name on every warning line, as before the split
#: ``masks.meta["guard"]["fallback"]`` of a mask handed to SynFlow (student, density or collapse)
HANDOFF = "synflow-mask"
_warned: set[tuple[str, ...]] = set()  # (reason, scorer, layers…) already reported, so a bench grid warns once


def warn_once(key: tuple[str, ...], message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def fallback_name(guard: str) -> str:
    return "SynFlow" if guard == "synflow" else "ERK"


def range_guard(
    call: Call, table: FeatureTable, density: float, dens: list[float], *, force: bool = False, rule: str = ""
) -> dict[str, float]:
    """Replace, in place, the learned density of every layer out of the scorer's range (of every
    layer with ``force``) by the fallback rule's (``rule``, default the guard's); return those
    layers with their distance to the nearest source layer (-1 where the scorer records no coverage)."""
    cfg, scorer = call.cfg, call.scorer
    if force:
        known = scorer.coverage.distances(table.layers) if scorer.coverage is not None else None
        outside = {lf.name: round(known[i], 3) if known is not None else -1.0 for i, lf in enumerate(table.layers)}
        _fallback_densities(call, table, density, dens, outside, rule=rule)
        return outside
    if cfg.guard == "off" or scorer.coverage is None:
        if cfg.guard != "off":
            warn_once(
                ("no-coverage", cfg.scorer),
                "scorer %s records no coverage, so autos cannot tell when its allocation extrapolates; add it "
                "with `autosparse train-scorer --add-coverage --store STORE --out %s`",
                cfg.scorer,
                cfg.scorer,
            )
        return {}
    distances = scorer.coverage.distances(table.layers)
    outside = {
        lf.name: round(dist, 3)
        for lf, dist in zip(table.layers, distances, strict=True)
        if dist > scorer.coverage.threshold
    }
    if not outside:
        return {}
    _fallback_densities(call, table, density, dens, outside)
    # the repair's rehome step then moves weights that lie on no path to layers with room: their counts
    # can end far from the rule's (MobileNet-v3 at 1%: 78 where ERK gives 502; helper)
    moved = " as a start (the repair's rehome step may move their dead weights elsewhere: rehome=false keeps them)"
    # said once per network (and scorer, guard), and only if the learned mask is the one returned (helper);
    # the closure holds no reference to the call, whose tensors must not outlive it (review)
    network, threshold = call.network, scorer.coverage.threshold
    call.about_learned.append(
        lambda: warn_once(
            (cfg.scorer, cfg.guard, network, *sorted(outside)),
            "autos: %d of %d layers are outside the range of scorer %s's source layers (distance > %.2f): %s — "
            "they get %s's allocation%s; the learned ranker still chooses their weights (guard=off forces the "
            "learned allocation, allocation=erk uses ERK everywhere)",
            len(outside),
            len(table.layers),
            cfg.scorer,
            threshold,
            name_list(sorted(outside)),
            fallback_name(cfg.guard),
            moved if cfg.repair > 0 and cfg.rehome else "",
        )
    )
    return outside


def _fallback_densities(
    call: Call, table: FeatureTable, density: float, dens: list[float], layers: Mapping[str, float], *, rule: str = ""
) -> None:
    """Put the rule's density (ERK's, or SynFlow's per-layer share; default the guard's) in
    ``dens`` for ``layers``."""
    shapes = {lf.name: torch.Size(lf.shape) for lf in table.layers}
    if (rule or call.cfg.guard) == "synflow":
        ref = call.synflow_masks(density)
        fallback = {n: float(m.float().mean()) for n, m in ref.items()}
    else:
        fallback = erk_densities(shapes, density)
    for i, lf in enumerate(table.layers):
        if lf.name in layers:
            dens[i] = fallback[lf.name]


def density_verdict(call: Call) -> Verdict | None:
    """The card's density evidence for this target (None: off, no evidence, or an old card).

    Each layer votes for its nearest source layer among the sources of the network's kind
    (plain, or with skip connections), since layer descriptors cannot tell a wide ResNet's
    convs from a VGG's. It reads only the network's graph and the layers' structural
    descriptors (kind, fan-in, depth, share of weights…), so it is the same for every seed
    and costs no gradient pass."""
    cfg, scorer = call.cfg, call.scorer
    if cfg.density_guard == "off" or scorer.evidence is None or scorer.coverage is None:
        return None
    among = None
    if scorer.evidence.residual:
        kind = _kind(call)
        if kind is None:  # cannot tell plain from residual: no evidence speaks for this net
            return None
        among = scorer.evidence.sources_like(kind == "residual")
    layers = compute_features(call.model, call.data, names=tuple(scorer.coverage.features), seed=call.seed).layers
    if len(scorer.coverage.owners) == len(scorer.coverage.points):
        owners = scorer.coverage.nearest_sources(layers, among)
        # None: no coverage point of a source of this kind, so no evidence speaks for this net
        return (
            None
            if owners is None
            else scorer.evidence.verdict(owners, [float(lf.numel) for lf in layers], call.density)
        )
    warn_once(
        ("no-owners", cfg.scorer),
        "scorer %s has density evidence but its coverage predates per-layer owners, so autos cannot "
        "read it; refresh the coverage with `autosparse train-scorer --add-coverage --store STORE --out %s`",
        cfg.scorer,
        cfg.scorer,
    )
    return None


def _kind(call: Call) -> str | None:
    """The network's kind, or None (warned once) where the probe's forward pass fails."""
    try:
        return call.network_kind()
    except ProbeError as exc:
        if exc.__cause__ is not None and is_shape_error(exc.__cause__):
            raise exc.__cause__ from None  # the inputs' shape: prune reports it once, as for any method
        warn_once(
            ("probe", call.cfg.scorer, type(call.model).__name__),
            "autos: cannot tell whether %s has skip connections (%s), so the density and student guards stay "
            "silent; check the input shape, or pass density_guard=off student_guard=off to silence this",
            type(call.model).__name__,
            exc,
        )
        return None


def student_verdict(call: Call) -> StudentVerdict | None:
    """The card's student evidence for this target's kind at this density (None: off, no evidence,
    or the kind cannot be told). Reads only the network's graph: the same for every seed."""
    if call.cfg.student_guard == "off" or call.scorer.student is None:
        return None
    kind = _kind(call)
    if kind is None:
        return None
    verdict = call.scorer.student.verdict(kind, call.density)
    points = call.scorer.student.points.get(kind, [])
    # sparser than any evidence: the guard stopped acting without a word (hunt); denser, the learned masks
    # are not where they lose
    if not verdict.per_net and points and call.density < min(p.density for p in points):
        near = min(points, key=lambda p: abs(math.log(p.density / call.density)))
        warn_once(
            ("student-reach", call.cfg.scorer, kind, f"{call.density:.6g}", call.network),
            "autos: density %.4g is beyond the student evidence of scorer %s for %s nets (nearest: %s at density "
            "%.4g, SynFlow minus learned %+.1f points; it speaks within a factor %g), so the student guard cannot "
            "decide: the learned mask is used unless another check hands the net to SynFlow; prune with method "
            "synflow to compare",
            call.density,
            call.cfg.scorer,
            kind,
            near.net,
            near.density,
            100 * near.gap,
            call.scorer.student.reach,
        )
    return verdict


def warn_student(call: Call, verdict: StudentVerdict) -> None:
    cfg = call.cfg
    warn_once(
        ("student", cfg.scorer, verdict.kind, f"{call.density:.6g}", call.network),
        "autos: at density %.4g, on validation nets of this network's kind (%s), SynFlow's masks trained %.1f "
        "points above the learned masks of scorer %s (SynFlow minus learned per net: %s); using SynFlow's mask "
        "(student_guard=off keeps the learned mask)",
        call.density,
        verdict.kind,
        100 * (verdict.gap or 0.0),
        cfg.scorer,
        ", ".join(f"{n} {100 * g:+.1f}" for n, g in sorted(verdict.per_net.items())),
    )


def warn_density(call: Call, verdict: Verdict) -> None:
    cfg = call.cfg
    warn_once(
        ("density", cfg.scorer, f"{call.density:.6g}", call.network, *sorted(verdict.per_source)),
        "autos: at density %.4g, on the sources nearest this network's layers, SynFlow's masks trained %.1f "
        "points above those of IMP, the teacher of scorer %s (weighted by the layers' weights; SynFlow minus IMP "
        "per source: %s); using SynFlow's mask (density_guard=off keeps the learned mask)",
        call.density,
        100 * (verdict.gap or 0.0),
        cfg.scorer,
        ", ".join(f"{a} {100 * g:+.1f}" for a, g in sorted(verdict.per_source.items())),
    )


def synflow_fallback(call: Call, *, reason: str, mend: bool = True, **record: Any) -> tuple[Masks, bool]:
    """SynFlow's own mask, with meta saying why ``autos`` handed the network to it, and whether
    SynFlow left a layer empty or off every input→output path (on torchvision's ResNet-18 at 1%
    it empties a 1×1 shortcut). Such a mask is mended once the learned scores are known (before
    that it comes back as made, flagged broken): each broken layer gets a weight from the most
    crowded layers (exact counts, the learned ranker choosing within the layer), then the
    connectivity repair. A SynFlow mask with every layer alive and on a path is returned as
    SynFlow made it."""
    cfg, paths, density = call.cfg, call.paths, call.density
    ref = call.synflow_masks(density)
    # "allocation": what made the mask, not allocation=synflow (the learned ranker under SynFlow's shares; helper);
    # "rescaled": False, as rescales() skips a mask handed over, while hparams record rescale=True
    meta = {"scorer": cfg.scorer, "allocation": HANDOFF, "units": "off", "repaired": [], "rescaled": False}
    guard: dict[str, Any] = {"fallback": HANDOFF, "reason": reason, **record}
    masks = Masks(ref.to_dict(), meta={**meta, "guard": guard})
    if not mend:
        return masks, False
    empty = [n for n, m in masks.items() if not bool(m.any())]
    # measured on SynFlow's own (per-call cached) mask, so the second call of this function in one
    # masks() call reuses the flow; the copy carrying our meta shares it
    off_path = [] if not paths.shape else paths.stats(ref).collapsed
    paths.share(masks, ref)
    if not (empty or off_path):
        return masks, False
    learned = call.scores
    if learned is None:
        return masks, True
    shapes = {n: m.shape for n, m in masks.items()}
    counts = counts_from_shares(shapes, density, {n: float(m.sum()) for n, m in masks.items()})
    # SynFlow's kept weights first, then the learned order: a layer SynFlow emptied gets its
    # best learned weights, a layer that gives one up loses its lowest-ranked
    prio = {n: masks[n].float() * 2 + pct_rank(learned[n]).reshape(shapes[n]) for n in masks}
    mended = masks_from_counts(prio, counts)
    moved: list[int] = []
    if cfg.repair > 0 and paths.shape:
        mended, moved, flow = repair_with_flow(paths.network, mended, prio, iterations=cfg.repair, rehome=cfg.rehome)
    else:
        flow = None
    guard["mended"] = {"empty": empty, "off_path": off_path}
    out = Masks(mended.to_dict(), meta={**meta, "repaired": moved, "guard": guard})
    paths.remember(out, flow)
    return out, True
