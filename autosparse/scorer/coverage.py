"""Knowing when the allocator extrapolates: how far a layer is from every layer it was trained on.

Why: the allocator answers "how dense should this layer be" from its descriptors (kind, fan-in,
share of the network's weights, depth, …). Asked about a layer unlike any source layer, it
answers with the same confidence — on a residual net outside an MLP-only zoo it starved the stem
and the classifier (41.5% vs SynFlow's 74.1% at 99%), while the same ranker under ERK's
allocation nearly matched SynFlow. So the card keeps the source layers' descriptors and, at
prune time, each target layer is measured against them.

The measure: the Euclidean distance, in the allocator's standardised input space (density left
out), from the target layer to its nearest source layer. What counts as far is calibrated on the
sources themselves, leave-one-architecture-out: for every source layer, its distance to the
nearest layer of a *different* architecture; the threshold is a high quantile of those distances
(times a margin). A layer of an unseen family (attention, a depthwise conv when no source had
one, a 1000-way classifier) lands beyond it; a held-out MLP of the source family does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import torch

from autosparse.features import LayerFeatures

#: quantile of the leave-one-architecture-out nearest distances that sets the threshold, and the
#: margin on it: a layer must be further from every source than 95% of source layers are from the
#: other architectures, by 25% — chosen so the held-out source shapes stay in range (docs/SCORER.md)
QUANTILE = 0.95
MARGIN = 1.25
#: how far one unit of change counts, in standardised units, on a layer-kind feature no source layer varied in
CONSTANT_SCALE = 1000.0
#: the features that say what kind of layer it is: a kind no source had is off every source. A size or a
#: depth that all sources shared only by chance (a store of one shape) is not: 310x100 is near 300x100 (review)
KIND_FEATURES = frozenset({"kind_linear", "kind_conv", "kind_attention"})  # not log_kernel: a size (3x3 vs 5x5)


def source_label(attrs: Mapping[str, Any], run_id: str) -> str:
    """The architecture a source run stands for: coverage owners and density evidence are keyed by it."""
    return str(attrs.get("model_label", run_id))


@dataclass
class Coverage:
    """The source layers' descriptors (standardised) and the distance beyond which a layer is out of range."""

    features: tuple[str, ...]
    mean: list[float]
    std: list[float]
    points: list[list[float]]  # standardised descriptors of distinct source layers
    threshold: float
    quantile: float = QUANTILE
    margin: float = MARGIN
    sources: list[str] = field(default_factory=list)  # architecture labels the points came from
    owners: list[str] = field(default_factory=list)  # each point's architecture ([] on cards before 2026-12-01)

    @classmethod
    def fit(
        cls,
        features: Sequence[str],
        rows: Sequence[torch.Tensor],
        labels: Sequence[str],
        *,
        quantile: float = QUANTILE,
        margin: float = MARGIN,
    ) -> Coverage:
        """From one (layers, features) tensor of descriptors per source run and its architecture label."""
        x = torch.cat([r.to(torch.float64) for r in rows])
        arch = [lab for r, lab in zip(rows, labels, strict=True) for _ in range(len(r))]
        mean, std = x.mean(0), x.std(0)
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # a constant feature: any change is far
        z = (x - mean) / std
        # distinct points (seeds of one architecture repeat the same descriptors)
        keep: dict[tuple[float, ...], str] = {}
        for row, lab in zip(z.tolist(), arch, strict=True):
            keep.setdefault(tuple(round(v, 6) for v in row), lab)
        pts = torch.tensor(list(keep), dtype=torch.float64)
        owners = list(keep.values())
        d = torch.cdist(pts, pts)
        same = torch.tensor([[a == b for b in owners] for a in owners])
        d[same] = float("inf")
        nearest = d.min(1).values
        finite = nearest[torch.isfinite(nearest)]
        base = float(torch.quantile(finite, quantile)) if len(finite) else 1.0
        return cls(
            features=tuple(features),
            mean=mean.tolist(),
            std=std.tolist(),
            points=pts.tolist(),
            threshold=base * margin,
            quantile=quantile,
            margin=margin,
            sources=sorted(set(owners)),
            owners=owners,
        )

    def _cdist(self, layers: Sequence[LayerFeatures]) -> torch.Tensor:
        x = torch.tensor([[lf.layer[f] for f in self.features] for lf in layers], dtype=torch.float64)
        std = torch.tensor(self.std, dtype=torch.float64)
        z = (x - torch.tensor(self.mean, dtype=torch.float64)) / std
        points = torch.tensor(self.points, dtype=torch.float64)
        # a layer kind every source layer shares (fit stores std 1 for it, every point at 0): a target that
        # differs there is off every source, yet a flip of kind_conv added only 1 to the distance, under a
        # threshold of 4, so a scorer of MLPs alone read a conv as in range (review); the same on every
        # point keeps the nearest source, and the threshold, as they were
        kinds = torch.tensor([f in KIND_FEATURES for f in self.features], dtype=torch.bool)
        if len(points):
            z[:, kinds & (std == 1.0) & (points.abs().amax(0) == 0)] *= CONSTANT_SCALE
        return torch.cdist(z, points)

    def distances(self, layers: Sequence[LayerFeatures]) -> list[float]:
        """Each layer's distance to its nearest source layer (standardised units)."""
        return self._cdist(layers).min(1).values.tolist()

    def nearest_sources(self, layers: Sequence[LayerFeatures], among: Set[str] | None = None) -> list[str] | None:
        """The architecture of each layer's nearest source layer, only counting sources in ``among``
        when given (None: a card that records no owners, or no source in ``among``)."""
        if len(self.owners) != len(self.points):
            return None
        d = self._cdist(layers)
        if among is not None:
            keep = torch.tensor([o in among for o in self.owners])
            if not bool(keep.any()):
                return None
            d[:, ~keep] = float("inf")
        return [self.owners[i] for i in d.argmin(1).tolist()]

    def out_of_range(self, layers: Sequence[LayerFeatures]) -> list[bool]:
        return [d > self.threshold for d in self.distances(layers)]

    def to_card(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": self.mean,
            "std": self.std,
            "points": self.points,
            "threshold": self.threshold,
            "quantile": self.quantile,
            "margin": self.margin,
            "sources": self.sources,
            "owners": self.owners,
        }

    @classmethod
    def from_card(cls, entry: dict[str, Any]) -> Coverage | None:
        if not entry:
            return None
        return cls(
            features=tuple(entry["features"]),
            mean=[float(v) for v in entry["mean"]],
            std=[float(v) for v in entry["std"]],
            points=[[float(v) for v in p] for p in entry["points"]],
            threshold=float(entry["threshold"]),
            quantile=float(entry.get("quantile", QUANTILE)),
            margin=float(entry.get("margin", MARGIN)),
            sources=list(entry.get("sources", [])),
            owners=list(entry.get("owners", [])),
        )
