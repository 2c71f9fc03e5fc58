"""The ``autos`` pruner: the learned mask, and the order of the checks that may replace it.

1. The student guard, then the density guard, from the network's graph and layer shapes alone:
   SynFlow's mask where the scorer's own learned masks trained below SynFlow's on validation nets
   of this kind at nearby densities (the student failed), else where the teacher failed on the
   nearest sources at this density (mended once the learned scores are known, if SynFlow itself
   left a layer empty or off every path; declined if even mended it cuts more layers off than the
   learned mask).
2. The learned mask (:mod:`.learned`, the range guard inside it).
3. The collapse check: a learned allocation that leaves no input→output path at all falls back to
   SynFlow's mask (``collapse="synflow"``) or to the guard's allocation everywhere under the
   learned ranker (``collapse="guard"``); ``collapse="off"`` keeps it (``prune`` reports the
   collapse), which is how the student evidence measures the scorer's own masks. A disconnected
   mask trains to chance, and the allocator learned from IMP, whose own masks disconnect deep
   plain nets at such densities. SynFlow's own mask is the default because on the validation
   shape where this happens (VGG-11-BN w0.125 at 99%) it trained 2.1 points above the old
   fallback, and no learned-ranker variant there — ERK's, SynFlow's or the guard's per-layer
   counts, a SynFlow-blended ranking, ten rounds — reached it at 99 or 99.5% (docs/SCORER.md
   "When the learned allocation collapses"; it costs the deep 6×100 MLP at 99.8%, RESULTS §8).
   Only a network without any path counts: a dead residual branch still leaves its shortcut.

One float64 path network serves the repair, the checks and (through :meth:`Autos.measured_paths`)
``prune``'s diagnostics: the repair's last pass already measured the final masks. ``autos``' own
θ0 rescale applies to the learned mask, not to a mask handed to SynFlow (:meth:`Autos.rescales`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from autosparse.core.masks import Masks
from autosparse.core.text import name_list
from autosparse.data.pruning_data import PruningData
from autosparse.features import compute_features
from autosparse.pruners.inputs import require_data
from autosparse.pruners.registry import ScoringPruner, register
from autosparse.pruners.scores import Scores
from autosparse.scorer.autos.call import Call
from autosparse.scorer.autos.config import AutosConfig
from autosparse.scorer.autos.guards import (
    HANDOFF,
    density_verdict,
    fallback_name,
    student_verdict,
    synflow_fallback,
    warn_density,
    warn_once,
    warn_student,
)
from autosparse.scorer.autos.learned import learned_masks
from autosparse.scorer.loaded import Scorer, load_scorer
from autosparse.topology.paths import PathStats

Measured = tuple[Masks, tuple[int, ...], PathStats]


@register("autos")
class Autos(ScoringPruner):
    own_inputs = True
    Config = AutosConfig
    data_dependent = True
    description = "learned scorer (AutoSparse): IMP-like layer allocation and alive units + within-layer ranking from init features"

    def _scorer(self) -> Scorer:
        return load_scorer(self.config.scorer)  # type: ignore[attr-defined]

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        scorer = self._scorer()
        data = require_data(data, self.name)  # a plain (x, y) batch from a direct call, as prune() takes it
        table = compute_features(model, data, names=scorer.features, seed=seed)
        return scorer.score_layers(table, model, data.input_shape if data else (tuple(cfg.input_shape) or None))

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        self._measured: Measured | None = None
        call = Call(self.config, self._scorer(), model, data, density, seed)  # type: ignore[arg-type]
        masks, self._measured = _guarded_masks(call)
        return masks

    def rescales(self, masks: Masks) -> bool:
        """Not where a guard handed the net to SynFlow's mask: it is returned as SynFlow makes it,
        the mask the guards' evidence measured (SynFlow's cells, unrescaled). On the validation
        cnn1d widths, which have no normalization layer to undo it, ``autos``' θ0 rescale cost
        SynFlow's masks 2-12 points (docs/SCORER.md, "Where the student was worth using")."""
        handed = masks.meta.get("guard", {}).get("fallback") == HANDOFF
        return super().rescales(masks) and not handed

    def measured_paths(self, masks: Masks) -> tuple[tuple[int, ...], PathStats] | None:
        measured = getattr(self, "_measured", None)
        if measured is None or measured[0] is not masks:
            return None
        return measured[1], measured[2]


def _say_mended(call: Call, mask: Masks, stats: PathStats) -> None:
    """Say that the mask handed over is SynFlow's *mended*, and whether the mend connected it.

    Why: "using SynFlow's mask" alone read as SynFlow's mask as made, yet ``synflow`` and ``autos``
    then differ, and where no free position of a layer lies on a path (a ShuffleNet branch whose
    channels no later layer reads) the mended layers still carry no signal.
    """
    mended = mask.meta.get("guard", {}).get("mended")
    if not mended:
        return
    broken = sorted(set(mended["empty"]) | set(mended["off_path"]))
    repair = " and the connectivity repair" if call.cfg.repair > 0 else ""
    if stats.approximate:
        outcome = (
            f"whether they carry signal is unknown (the path counts are approximate: {', '.join(stats.approximate)})"
        )
    elif stats.collapsed:
        outcome = f"{len(stats.collapsed)} layer(s) still carry no signal: {name_list(stats.collapsed)}"
    else:  # a layer no forward reads, or that reads constants, is not among them: prune's diagnostics name it
        outcome = "every layer the input reaches now lies on an input-to-output path"
    warn_once(
        ("mended", call.cfg.scorer, f"{call.density:.6g}", call.network, *broken),
        "autos: SynFlow's mask left %d layer(s) empty or off every input-to-output path (%s); it was mended: "
        "they got weights from its most crowded layers, the learned ranker choosing%s; %s",
        len(broken),
        name_list(broken),
        repair,
        outcome,
    )


@dataclass(frozen=True)
class _Handoff:
    """A guard's decision, made before any learned pass, to hand the network to SynFlow's mask."""

    reason: str  # "student" | "density": the guard, and the meta key of its record
    record: dict[str, Any]
    warn: Callable[[], None]


def _handoff(call: Call) -> _Handoff | None:
    """The student guard first (the scorer's own record on nets of this kind), then the density
    guard (its teacher's on the nearest sources); each reads only the graph and the layer shapes."""
    student = student_verdict(call)
    if student is not None and student.prefer_synflow:
        return _Handoff("student", {"student": student.to_meta()}, lambda: warn_student(call, student))
    verdict = density_verdict(call)
    if verdict is not None and verdict.prefer_synflow:
        return _Handoff("density", {"verdict": verdict.to_meta()}, lambda: warn_density(call, verdict))
    return None


def _learned(call: Call, masks: Masks) -> Masks:
    """``masks``, the learned mask, returned: say now what was found while making it (the range guard's
    layers), which a hand-off to SynFlow's mask would have made untrue (helper)."""
    for say in call.about_learned:
        say()
    call.about_learned.clear()
    return masks


def _guarded_masks(call: Call) -> tuple[Masks, Measured | None]:
    """The mask to return, and its path statistics where a pass already measured them."""
    cfg, paths, density = call.cfg, call.paths, call.density
    guarded = cfg.guarded and bool(call.shape)
    handoff = _handoff(call) if guarded else None
    if handoff is not None:
        # decided from the graph and the layers' shapes alone: SynFlow's mask as made needs no learned pass
        fallback, broken = synflow_fallback(call, reason=handoff.reason, **handoff.record)
        if not broken:
            handoff.warn()
            return fallback, paths.known(fallback)
    masks = learned_masks(call)
    if not guarded:
        return _learned(call, masks), paths.known(masks)
    stats = paths.stats(masks)
    if handoff is not None:
        # SynFlow left a layer empty or off every path: mend it, the learned ranker choosing
        fallback, _ = synflow_fallback(call, reason=handoff.reason, **handoff.record)
        fallback_stats = paths.stats(fallback)
        if len(fallback_stats.collapsed) <= len(stats.collapsed):
            handoff.warn()
            _say_mended(call, fallback, fallback_stats)
            return fallback, (fallback, paths.shape, fallback_stats)
        # SynFlow's mask, even mended, leaves more layers off every path than the learned one
        # (MobileNet-v3's squeeze-excitation layers at 1%): a mask is only as good as its paths
        why = f"SynFlow's mask leaves {len(fallback_stats.collapsed)} layers off every path"
        masks.meta[f"{handoff.reason}_guard"] = {**next(iter(handoff.record.values())), "declined": why}
        warn_once(  # the decision was recorded in the masks' meta alone (helper)
            ("declined", handoff.reason, cfg.scorer, f"{density:.6g}", call.network),
            "autos: the %s guard would hand this net to SynFlow's mask, but %s, even mended (the learned mask: "
            "%d): the learned mask is kept (%s_guard=off skips the guard)",
            handoff.reason,
            why,
            len(stats.collapsed),
            handoff.reason,
        )
    if stats.log_paths > -math.inf or stats.approximate or cfg.collapse == "off":
        # collapse="off": the student's own mask, for its record
        return _learned(call, masks), (masks, paths.shape, stats)
    if cfg.collapse == "synflow":
        # as SynFlow made it: the rule was measured so (docs/SCORER.md); mending is the density guard's
        fallback, _ = synflow_fallback(call, reason="collapse", mend=False)
    else:
        fallback = learned_masks(call, force=True)
    fallback_stats = paths.stats(fallback)
    if fallback_stats.log_paths == -math.inf:
        # the fallback is no better; prune() reports the collapse
        return _learned(call, masks), (masks, paths.shape, stats)
    instead = (
        "SynFlow's mask" if cfg.collapse == "synflow" else f"{fallback_name(cfg.guard)}'s allocation for every layer"
    )
    warn_once(
        ("collapse", cfg.scorer, cfg.guard, cfg.collapse, f"{density:.6g}", call.network),
        "autos: the learned mask of scorer %s (its allocation, ranking and repair) leaves no input-to-output path at density %.4g "
        "(%d layers cut off: %s); using %s instead (%s, collapse=off keeps the learned mask)",
        cfg.scorer,
        density,
        len(stats.collapsed),
        name_list(stats.collapsed),
        instead,
        "collapse=synflow hands it to SynFlow's mask"
        if cfg.collapse == "guard"
        else "collapse=guard keeps the learned ranker under the guard's allocation",
    )
    fallback.meta["guard"] = {**fallback.meta.get("guard", {}), "reason": "collapse", "collapsed": stats.collapsed}
    return fallback, (fallback, paths.shape, fallback_stats)
