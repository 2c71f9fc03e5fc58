"""``autos``: prune an unseen architecture at init with a scorer learned from IRP labels.

One shot: measure the scorer's features at θ0 on the pruning batch (the same code that made the
training data), rank weights within each layer with the ranker, and give each layer the number
of weights the allocator predicts IMP would have kept there at this density — turned into exact
counts, at least one per layer. With a unit head on the scorer (``units="learned"``), each
hidden linear layer's weights go to its best ``scale ×`` (predicted alive fraction) output
units — IMP's structure inside a layer, not only its allocation across layers (docs/SCORER.md).
Then the connectivity repair puts every kept weight on an input→output path. ``allocation`` can
instead borrow a classic rule (global, uniform, ERK) to study ranking alone.

``rounds > 1`` re-measures the mask-dependent features (unit degrees, layer density) on the
thinned network between rounds, the way SynFlow iterates; the default is one shot.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autosparse.core.allocation import allocate, counts_from_shares, erk_densities, masks_from_counts
from autosparse.core.errors import ConfigError
from autosparse.core.masks import Masks
from autosparse.core.parallel import single_threaded_torch
from autosparse.core.ranking import pct_rank
from autosparse.data.pruning_data import PruningData
from autosparse.features import FeatureTable, compute_features
from autosparse.pruners.iterate import schedule_densities
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, make_pruner, register
from autosparse.pruners.scores import Scores
from autosparse.scorer.checkpoint import scorer_evidence_sha256, scorer_weights_sha256
from autosparse.scorer.evidence import Verdict
from autosparse.scorer.loaded import Scorer, load_scorer
from autosparse.topology.connectivity import repair_with_flow
from autosparse.topology.merges import ProbeError, residual_kind
from autosparse.topology.paths import PathFlow, PathNetwork, PathStats, stats_from_flow

log = logging.getLogger(__name__)

DEFAULT_SCORER = "autos_mlp"
GUARDS = ("erk", "synflow", "off")
DENSITY_GUARDS = ("synflow", "off")
COLLAPSE_RULES = ("synflow", "guard")
UNIT_MODES = ("learned", "all", "off")
ALLOCATIONS = ("learned", "synflow", "global", "uniform", "erk")
_warned: set[tuple[str, ...]] = set()  # (scorer, layers…) already reported, so a bench grid warns once


def _warn_once(key: tuple[str, ...], message: str, *args: Any) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


@dataclass
class AutosConfig(PrunerConfig):
    scorer: str = DEFAULT_SCORER  # a shipped scorer's name or a scorer directory
    allocation: str = "learned"  # learned | synflow (SynFlow's per-layer shares) | global | uniform | erk
    rounds: int = 1  # > 1: re-score the surviving weights on an exponential schedule down to the density
    units: str = "learned"  # learned: hidden linear layers keep the unit head's alive units | all: convs too | off
    unit_scale: float = 0.0  # > 0 overrides the scorer card's unit scale (for validation sweeps)
    repair: int = 3  # connectivity-repair iterations (0 = off), see autosparse.topology.connectivity
    input_shape: tuple[int, ...] = ()  # only needed without data
    rescale: bool = True  # keep extreme masks trainable at depth: rescale kept weights at θ0 (docs/SCORER.md)
    guard: str = "erk"  # layers out of the scorer's training range get this allocation: erk | synflow | off
    collapse: str = "synflow"  # no input→output path left: synflow (SynFlow's mask) | guard (guard's allocation)
    synflow_mix: float = 0.0  # weight of SynFlow's within-layer percentile in the ranking (0 = learned only)
    erk_floor: float = 0.0  # raise each layer's learned density to this x ERK's, then renormalise (0 = off)
    density_guard: str = "synflow"  # SynFlow's mask where it beat IMP on the nearest sources of its kind | off

    def __post_init__(self) -> None:
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(f"unknown autos allocation {self.allocation!r}; use {', '.join(ALLOCATIONS)}")
        if self.units not in UNIT_MODES:
            raise ConfigError(f"unknown autos units {self.units!r}; use {', '.join(UNIT_MODES)}")
        if not 0.0 <= self.unit_scale <= 1.0:
            raise ConfigError(f"autos unit_scale must be in (0, 1] (0 = the scorer card's), got {self.unit_scale}")
        if self.rounds < 1:
            raise ConfigError("autos rounds must be >= 1")
        if self.repair < 0:
            raise ConfigError("autos repair must be >= 0 iterations")
        if not 0.0 <= self.synflow_mix <= 1.0:
            raise ConfigError(
                f"autos synflow_mix must be in [0, 1] (0 = the learned ranking alone), got {self.synflow_mix}"
            )
        if not 0.0 <= self.erk_floor <= 1.0:
            raise ConfigError(f"autos erk_floor must be in [0, 1] (0 = off), got {self.erk_floor}")
        if self.erk_floor > 0 and self.allocation not in ("learned", "synflow"):
            raise ConfigError(
                f"autos erk_floor acts on the learned or synflow allocation, not allocation={self.allocation!r}; "
                "drop erk_floor or use allocation=learned"
            )
        if self.collapse not in COLLAPSE_RULES:
            raise ConfigError(f"unknown autos collapse rule {self.collapse!r}; use {', '.join(COLLAPSE_RULES)}")
        if self.guard not in GUARDS:
            raise ConfigError(f"unknown autos guard {self.guard!r}; use {', '.join(GUARDS)}")
        if self.density_guard not in DENSITY_GUARDS:
            raise ConfigError(f"unknown autos density_guard {self.density_guard!r}; use {', '.join(DENSITY_GUARDS)}")

    def identity(self) -> dict[str, Any]:
        """The scorer's weights, and what the density guard reads from its card when the guard can
        act: evidence (and the coverage it votes through) changes masks without changing weights."""
        out = {"scorer_sha256": scorer_weights_sha256(self.scorer)}
        if self.density_guard != "off" and self.guard != "off" and self.allocation == "learned":
            evidence = scorer_evidence_sha256(self.scorer)
            if evidence:
                out["evidence_sha256"] = evidence
        return out


@register("autos")
class Autos(ScoringPruner):
    Config = AutosConfig
    data_dependent = True
    description = "learned scorer (AutoSparse): IMP-like layer allocation and alive units + within-layer ranking from init features"

    def _scorer(self) -> Scorer:
        return load_scorer(self.config.scorer)  # type: ignore[attr-defined]

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        scorer = self._scorer()
        table = compute_features(model, data, names=scorer.features, seed=seed)
        return scorer.score_layers(table, model, data.input_shape if data else (tuple(cfg.input_shape) or None))

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        try:
            return self._guarded_masks(model, data, density, seed=seed)
        finally:  # per-call state: a pruner kept by a caller must not hold the last call's tensors
            self._scores = None
            self._synflow = {}

    def _guarded_masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int) -> Masks:
        """The learned mask; if its learned allocation leaves no input→output path at all, SynFlow's
        mask instead (``collapse="synflow"``), or the guard's allocation everywhere under the
        learned ranker (``collapse="guard"``). A disconnected mask trains to chance, and the
        allocator learned from IMP, whose own masks disconnect deep plain nets at such densities.
        SynFlow's own mask is the default because on the validation shape where this happens
        (VGG-11-BN w0.125 at 99%) it trained 2.1 points above the old fallback, and no
        learned-ranker variant there — ERK's, SynFlow's or the guard's per-layer counts, a
        SynFlow-blended ranking, ten rounds — reached it at 99 or 99.5% (docs/SCORER.md "When
        the learned allocation collapses"; it costs the deep 6×100 MLP at 99.8%, RESULTS §8).
        ``autos``' own θ0 rescale still applies to the mask it returns.

        Before any of that, the density guard: where the card's evidence says SynFlow's masks
        trained more than a margin above IMP's on the nearest sources of the network's kind at this
        density (the teacher failed there), SynFlow's mask (``density_guard="synflow"``, docs/SCORER.md
        "Where the teacher was worth imitating").

        Only a network without any path counts: a dead residual branch still leaves its shortcut.
        One float64 path network serves the repair, this check and (through :meth:`measured_paths`)
        ``prune``'s diagnostics: the repair's last pass already measured the final masks.
        """
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        shape = data.input_shape if data else tuple(cfg.input_shape)
        paths = _Paths(model, shape)
        self._measured = None
        self._synflow: dict[float, Masks] = {}  # SynFlow's mask per density, for this call only
        self._scores = None
        guarded = cfg.allocation == "learned" and cfg.guard != "off" and bool(shape)
        verdict = self._density_verdict(model, data, density, seed) if guarded else None
        if verdict is not None and verdict.prefer_synflow:
            # decided from the layers' shapes alone: SynFlow's mask as made needs no learned pass
            fallback, broken = self._synflow_fallback(
                model, data, density, paths, reason="density", verdict=verdict.to_meta()
            )
            if not broken:
                self._warn_density(density, verdict)
                self._measured = paths.known(fallback)
                return fallback
        masks = self._masks(model, data, density, seed=seed, force=False, paths=paths)
        if not guarded:
            self._measured = paths.known(masks)
            return masks
        stats = paths.stats(masks)
        if verdict is not None and verdict.prefer_synflow:
            # SynFlow left a layer empty or off every path: mend it, the learned ranker choosing
            fallback, _ = self._synflow_fallback(
                model, data, density, paths, reason="density", verdict=verdict.to_meta()
            )
            fallback_stats = paths.stats(fallback)
            if len(fallback_stats.collapsed) <= len(stats.collapsed):
                self._warn_density(density, verdict)
                self._measured = (fallback, tuple(shape), fallback_stats)
                return fallback
            # SynFlow's mask, even mended, leaves more layers off every path than the learned one
            # (MobileNet-v3's squeeze-excitation layers at 1%): a mask is only as good as its paths
            masks.meta["density_guard"] = {
                **verdict.to_meta(),
                "declined": f"SynFlow's mask leaves {len(fallback_stats.collapsed)} layers off every path",
            }
        if stats.log_paths > -math.inf or stats.approximate:
            self._measured = (masks, tuple(shape), stats)
            return masks
        if cfg.collapse == "synflow":
            # as SynFlow made it: the rule was measured so (docs/SCORER.md); mending is the density guard's
            fallback, _ = self._synflow_fallback(model, data, density, paths, reason="collapse", mend=False)
        else:
            fallback = self._masks(model, data, density, seed=seed, force=True, paths=paths)
        fallback_stats = paths.stats(fallback)
        if fallback_stats.log_paths == -math.inf:
            self._measured = (masks, tuple(shape), stats)
            return masks  # the fallback is no better; prune() reports the collapse
        instead = (
            "SynFlow's mask"
            if cfg.collapse == "synflow"
            else f"{_fallback_name(cfg.guard)}'s allocation for every layer"
        )
        _warn_once(
            ("collapse", cfg.scorer, cfg.guard, cfg.collapse, f"{density:.6g}"),
            "autos: the learned allocation of scorer %s leaves no input-to-output path at density %.4g "
            "(%d layers cut off: %s); using %s instead (collapse=guard keeps the learned ranker under "
            "the guard's allocation, guard=off keeps the learned mask)",
            cfg.scorer,
            density,
            len(stats.collapsed),
            ", ".join(stats.collapsed),
            instead,
        )
        fallback.meta["guard"] = {**fallback.meta.get("guard", {}), "reason": "collapse", "collapsed": stats.collapsed}
        self._measured = (fallback, tuple(shape), fallback_stats)
        return fallback

    def _synflow_fallback(
        self,
        model: nn.Module,
        data: PruningData | None,
        density: float,
        paths: _Paths,
        *,
        reason: str,
        mend: bool = True,
        **record: Any,
    ) -> tuple[Masks, bool]:
        """SynFlow's own mask, with meta saying why ``autos`` handed the network to it, and whether
        SynFlow left a layer empty or off every input→output path (on torchvision's ResNet-18 at 1%
        it empties a 1×1 shortcut). Such a mask is mended once the learned scores are known (before
        that it comes back as made, flagged broken): each broken layer gets a weight from the most
        crowded layers (exact counts, the learned ranker choosing within the layer), then the
        connectivity repair. A SynFlow mask with every layer alive and on a path is returned as
        SynFlow made it."""
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        ref = self._synflow_masks(model, data, density)
        meta = {"scorer": cfg.scorer, "allocation": "synflow", "units": "off", "repaired": []}
        guard: dict[str, Any] = {"fallback": "synflow-mask", "reason": reason, **record}
        masks = Masks(ref.to_dict(), meta={**meta, "guard": guard})
        if not mend:
            return masks, False
        empty = [n for n, m in masks.items() if not bool(m.any())]
        # measured on SynFlow's own (per-call cached) mask, so the second call of this method in one
        # masks() call reuses the flow; the copy carrying our meta shares it
        off_path = [] if not paths.shape else paths.stats(ref).collapsed
        paths.share(masks, ref)
        if not (empty or off_path):
            return masks, False
        learned = self._scores
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
            mended, moved, flow = repair_with_flow(paths.network, mended, prio, iterations=cfg.repair)
        else:
            flow = None
        guard["mended"] = {"empty": empty, "off_path": off_path}
        out = Masks(mended.to_dict(), meta={**meta, "repaired": moved, "guard": guard})
        paths.remember(out, flow)
        return out, True

    def _density_verdict(self, model: nn.Module, data: PruningData | None, density: float, seed: int) -> Verdict | None:
        """The card's density evidence for this target (None: off, no evidence, or an old card).

        Each layer votes for its nearest source layer among the sources of the network's kind
        (plain, or with skip connections), since layer descriptors cannot tell a wide ResNet's
        convs from a VGG's. It reads only the network's graph and the layers' structural
        descriptors (kind, fan-in, depth, share of weights…), so it is the same for every seed
        and costs no gradient pass."""
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        scorer = self._scorer()
        if cfg.density_guard == "off" or scorer.evidence is None or scorer.coverage is None:
            return None
        shape = data.input_shape if data else tuple(cfg.input_shape)
        among = None
        if scorer.evidence.residual:
            try:
                residual = residual_kind(model, shape)
            except ProbeError as exc:  # cannot tell plain from residual: no evidence speaks for this net
                _warn_once(
                    ("probe", cfg.scorer, type(model).__name__),
                    "autos: cannot tell whether %s has skip connections (%s), so the density guard stays "
                    "silent; check the input shape, or pass density_guard=off to silence this",
                    type(model).__name__,
                    exc,
                )
                return None
            among = scorer.evidence.sources_like(residual)
        layers = compute_features(model, data, names=tuple(scorer.coverage.features), seed=seed).layers
        if len(scorer.coverage.owners) == len(scorer.coverage.points):
            owners = scorer.coverage.nearest_sources(layers, among)
            # None: no coverage point of a source of this kind, so no evidence speaks for this net
            return (
                None if owners is None else scorer.evidence.verdict(owners, [float(lf.numel) for lf in layers], density)
            )
        _warn_once(
            ("no-owners", cfg.scorer),
            "scorer %s has density evidence but its coverage predates per-layer owners, so autos cannot "
            "read it; refresh the coverage with `autosparse train-scorer --add-coverage --store STORE --out %s`",
            cfg.scorer,
            cfg.scorer,
        )
        return None

    def _warn_density(self, density: float, verdict: Verdict) -> None:
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        _warn_once(
            ("density", cfg.scorer, f"{density:.6g}", *sorted(verdict.per_source)),
            "autos: at density %.4g, on the sources nearest this network's layers, SynFlow's masks trained %.1f "
            "points above those of IMP, the teacher of scorer %s (weighted by the layers' weights; SynFlow minus IMP "
            "per source: %s); using SynFlow's mask (density_guard=off keeps the learned mask)",
            density,
            100 * (verdict.gap or 0.0),
            cfg.scorer,
            ", ".join(f"{a} {100 * g:+.1f}" for a, g in sorted(verdict.per_source.items())),
        )

    def measured_paths(self, masks: Masks) -> tuple[tuple[int, ...], PathStats] | None:
        measured = getattr(self, "_measured", None)
        if measured is None or measured[0] is not masks:
            return None
        return measured[1], measured[2]

    def _masks(
        self, model: nn.Module, data: PruningData | None, density: float, *, seed: int, force: bool, paths: _Paths
    ) -> Masks:
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        scorer = self._scorer()
        masks: Masks | None = None
        restricted: set[str] = set()  # layers whose alive units the unit head chose
        guarded: dict[str, float] = {}  # layers out of the scorer's range -> their distance to the sources
        steps = schedule_densities(density, cfg.rounds, "exp")
        for d in steps:
            # the gradient and SynFlow passes use torch's threads, as SNIP's does; what follows is
            # many medium ops whose intra-op threads stall each other on a loaded machine, so it
            # runs single-threaded, parallel over layers and blocks instead (see map_layers)
            names = scorer.features
            if cfg.synflow_mix > 0 and "synflow_rank" not in names:
                names = (*names, "synflow_rank")
            table = compute_features(model, data, names=names, masks=masks, seed=seed)
            with single_threaded_torch():
                scores = scorer.score_layers(
                    table, model, data.input_shape if data else (tuple(cfg.input_shape) or None)
                )
                if cfg.synflow_mix > 0:
                    scores = _mix_synflow(scores, table, cfg.synflow_mix)
                if masks is not None:  # what an earlier round pruned stays pruned
                    scores = {n: torch.where(masks[n], s, torch.tensor(float("-inf"))) for n, s in scores.items()}
                if cfg.allocation in ("learned", "synflow"):
                    shapes = {lf.name: torch.Size(lf.shape) for lf in table.layers}
                    dens = scorer.layer_densities(table, d)
                    # allocation=synflow: every layer gets SynFlow's share (the guard's rule, forced)
                    borrowed = cfg.allocation == "synflow"
                    outside = self._guard(
                        scorer, table, model, data, d, dens, force=force or borrowed, rule="synflow" if borrowed else ""
                    )
                    if not borrowed:
                        guarded.update(outside)
                    if cfg.erk_floor > 0:
                        dens = _erk_floor(table, shapes, d, dens, cfg.erk_floor)
                    shares = {lf.name: p * lf.numel for lf, p in zip(table.layers, dens)}
                    caps = {n: int(m.sum()) for n, m in masks.items()} if masks is not None else None
                    counts = counts_from_shares(shapes, d, shares, caps=caps)
                    scale = cfg.unit_scale or None
                    fractions = scorer.unit_fractions(table, d, scale) if cfg.units != "off" else None
                    units = (
                        _unit_budget(table, fractions, outside, convs=cfg.units == "all")
                        if fractions is not None
                        else None
                    )
                    masks = masks_from_counts(scores, counts, units)
                    restricted = {n for n, u in (units or {}).items() if u < shapes[n][0]}
                else:
                    masks = allocate(scores, d, scope=cfg.allocation)  # type: ignore[arg-type]
        assert masks is not None
        self._scores = scores  # the SynFlow fallback's mend chooses by them
        moved: list[int] = []
        shape = data.input_shape if data else tuple(cfg.input_shape)
        if cfg.repair > 0 and shape:
            prefer = {  # mend paths inside the chosen units rather than reviving others
                n: m.reshape(m.shape[0], -1).any(1).reshape(-1, *([1] * (m.dim() - 1)))
                for n, m in masks.items()
                if n in restricted
            }
            # batch-1 float64 passes: small ops, single-threaded inside PathNetwork (see above)
            masks, moved, flow = repair_with_flow(
                paths.network, masks, scores, iterations=cfg.repair, prefer=prefer or None
            )
        else:
            flow = None
        meta = {"scorer": cfg.scorer, "allocation": cfg.allocation, "units": cfg.units, "repaired": moved}
        if guarded:
            meta["guard"] = {"fallback": cfg.guard, "layers": sorted(guarded), "distances": guarded, "reason": "range"}
        out = Masks(masks.to_dict(), meta=meta)
        paths.remember(out, flow)
        return out

    def _guard(
        self,
        scorer: Scorer,
        table: FeatureTable,
        model: nn.Module,
        data: PruningData | None,
        density: float,
        dens: list[float],
        *,
        force: bool = False,
        rule: str = "",
    ) -> dict[str, float]:
        """Replace, in place, the learned density of every layer out of the scorer's range (of every
        layer with ``force``) by the fallback rule's (``rule``, default the guard's); return those
        layers with their distance to the nearest source layer (-1 where the scorer records no coverage)."""
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        if force:
            known = scorer.coverage.distances(table.layers) if scorer.coverage is not None else None
            outside = {lf.name: round(known[i], 3) if known is not None else -1.0 for i, lf in enumerate(table.layers)}
            self._fallback(model, data, table, density, dens, outside, rule=rule)
            return outside
        if cfg.guard == "off" or scorer.coverage is None:
            if cfg.guard != "off":
                _warn_once(
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
        self._fallback(model, data, table, density, dens, outside)
        _warn_once(
            (cfg.scorer, cfg.guard, *sorted(outside)),
            "autos: %d of %d layers are outside the range of scorer %s's source layers (distance > %.2f): %s — "
            "they get %s's allocation; the learned ranker still chooses their weights (guard=off forces the "
            "learned allocation, allocation=erk uses ERK everywhere)",
            len(outside),
            len(table.layers),
            cfg.scorer,
            scorer.coverage.threshold,
            ", ".join(sorted(outside)),
            _fallback_name(cfg.guard),
        )
        return outside

    def _fallback(
        self,
        model: nn.Module,
        data: PruningData | None,
        table: FeatureTable,
        density: float,
        dens: list[float],
        layers: Mapping[str, float],
        *,
        rule: str = "",
    ) -> None:
        """Put the rule's density (ERK's, or SynFlow's per-layer share; default the guard's) in
        ``dens`` for ``layers``."""
        cfg: AutosConfig = self.config  # type: ignore[assignment]
        shapes = {lf.name: torch.Size(lf.shape) for lf in table.layers}
        if (rule or cfg.guard) == "synflow":
            ref = self._synflow_masks(model, data, density)
            fallback = {n: float(m.float().mean()) for n, m in ref.items()}
        else:
            fallback = erk_densities(shapes, density)
        for i, lf in enumerate(table.layers):
            if lf.name in layers:
                dens[i] = fallback[lf.name]

    def _synflow_masks(self, model: nn.Module, data: PruningData | None, density: float) -> Masks:
        """SynFlow's own mask at ``density`` (100 rounds; data-free and seed-free), computed once
        per ``masks`` call: the guard's SynFlow shares and the collapse fallback both read it."""
        if density not in self._synflow:  # reset by every masks() call
            with torch.random.fork_rng(devices=[]):
                self._synflow[density] = make_pruner("synflow").masks(model, data, density)
        return self._synflow[density]


def _mix_synflow(scores: dict[str, torch.Tensor], table: FeatureTable, mix: float) -> dict[str, torch.Tensor]:
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


def _erk_floor(
    table: FeatureTable, shapes: Mapping[str, torch.Size], density: float, dens: list[float], floor: float
) -> list[float]:
    """Raise every layer's learned density to at least ``floor`` × ERK's for it.

    Why: past the densities where the sources' IMP runs stayed healthy, the learned allocation
    keeps following IMP's trend of starving the deep layers of plain nets (VGG-11: its last three
    convs at 0.05-0.16 × ERK at 99%), the trend that collapsed IMP itself there.
    """
    erk = erk_densities(shapes, density)
    return [max(p, floor * erk[lf.name]) for lf, p in zip(table.layers, dens, strict=True)]


def _fallback_name(guard: str) -> str:
    return "SynFlow" if guard == "synflow" else "ERK"


def _unit_budget(
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
    last = table.layers[-1].name
    return {
        lf.name: round(f * lf.shape[0])
        if (lf.kind == "linear" or (convs and lf.kind == "conv")) and lf.name != last and lf.name not in (outside or {})
        else lf.shape[0]
        for lf, f in zip(table.layers, fractions, strict=True)
    }


class _Paths:
    """One float64 path network of the model for a whole ``autos`` call, built on first use, and the
    flows it measured per mask (the repair's last pass), so no mask is counted twice."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...]) -> None:
        self.model, self.shape = model, tuple(shape)
        self._net: PathNetwork | None = None
        self._flows: list[tuple[Masks, PathFlow]] = []

    @property
    def network(self) -> PathNetwork:
        if self._net is None:
            self._net = PathNetwork(self.model, self.shape)
        return self._net

    def remember(self, masks: Masks, flow: PathFlow | None) -> None:
        if flow is not None:
            self._flows.append((masks, flow))

    def share(self, masks: Masks, same: Masks) -> None:
        """``masks`` keeps exactly the weights of ``same``: the flow measured for one serves both."""
        self.remember(masks, next((f for m, f in self._flows if m is same), None))

    def stats(self, masks: Masks) -> PathStats:
        flow = next((f for m, f in self._flows if m is masks), None)
        if flow is None:
            flow = self.network.flow(self.network.weights(masks))
            self._flows.append((masks, flow))
        return stats_from_flow(flow, masks)

    def known(self, masks: Masks) -> tuple[Masks, tuple[int, ...], PathStats] | None:
        """The statistics of ``masks`` if a pass already measured them (no new pass)."""
        if not any(m is masks for m, _ in self._flows):
            return None
        return masks, self.shape, self.stats(masks)
