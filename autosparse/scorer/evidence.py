"""Where the teacher was worth imitating: IMP against SynFlow on the scorer's own sources, by density.

Why: the scorer learns IMP's allocation, and IMP is not a good teacher everywhere. On the deep
plain sources (VGG-11-BN, Conv-6) IMP rewound to θ0 falls to chance between 0.8% and 0.4%
density, where SynFlow's masks of the same net still train to 70-80%; a scorer taught there
funnels the deep convs the way IMP did (docs/SCORER.md). On the residual sources IMP is weak at
0.4% too, yet its allocation is what beats SynFlow on a held-out ResNet. A threshold on "IMP was
healthy" cannot tell the two apart; the comparison with the classic method at the same density,
on the same source net and recipe, can — among sources of the target's kind, plain or residual
(:mod:`autosparse.topology.merges`; a wide ResNet's layers look like a VGG's). The layer-range
guard (:mod:`autosparse.scorer.coverage`) asks "has the allocator seen layers like these?"; this
asks "at this density, was what it saw worth copying?".

The evidence: for each source architecture and each measured density, the test accuracy the
store recorded for IMP's mask at that IRP round, and SynFlow's mask of the same net at the same
density trained with the run's own recipe (a bench over the source shapes, e.g.
``configs/bench/fmnist_source_evidence.yaml``). At prune time each target layer votes for the
architecture of its nearest source layer of the same kind, weighted by its number of weights; where the weighted
gap (SynFlow minus IMP) at the target density exceeds ``margin``, ``autos`` hands the network to
SynFlow's own mask and says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

#: SynFlow must have trained this much better than IMP (test accuracy, absolute) on the nearest
#: sources before the learned allocation is set aside: larger than the seed-to-seed spread of one
#: cell on the sources' 2k-10k test images (1-3 points), fixed before the evidence was measured
MARGIN = 0.05
#: an evidence density speaks for target densities within this factor of it (one IRP round of 50%)
REACH = 2.0
#: the share of the target's weights whose nearest sources carry evidence for a decision to be made
MIN_COVERED = 0.5


class _HasDensity(Protocol):
    @property
    def density(self) -> float: ...


P = TypeVar("P", bound=_HasDensity)


def nearest(points: Iterable[P], density: float, reach: float) -> P | None:
    """The point nearest ``density`` in log scale, if one lies within a factor ``reach`` of it
    (the first of equally near ones); the density and student evidence both speak this way."""
    best: P | None = None
    for p in points:
        dist = abs(math.log(p.density / density))
        if dist <= math.log(reach) + 1e-9 and (best is None or dist < abs(math.log(best.density / density))):
            best = p
    return best


@dataclass(frozen=True)
class Point:
    """One source architecture at one density: IMP's recorded accuracy and SynFlow's."""

    density: float
    imp: float
    synflow: float

    @property
    def gap(self) -> float:
        return self.synflow - self.imp


@dataclass(frozen=True)
class Verdict:
    """The density check's answer for one target at one density."""

    prefer_synflow: bool
    gap: float | None  # weighted SynFlow - IMP accuracy over the covered weights (None: no evidence)
    covered: float  # share of the target's weights whose nearest source architecture had evidence here
    per_source: dict[str, float]  # architecture -> its gap at this density (only those with evidence)

    def to_meta(self) -> dict[str, Any]:
        return {
            "gap": None if self.gap is None else round(self.gap, 4),
            "covered": round(self.covered, 4),
            "per_source": {k: round(v, 4) for k, v in sorted(self.per_source.items())},
        }


@dataclass
class DensityEvidence:
    """IMP against SynFlow per source architecture and density, as the scorer's card stores it."""

    points: dict[str, list[Point]]
    margin: float = MARGIN
    reach: float = REACH
    min_covered: float = MIN_COVERED
    provenance: list[str] = field(default_factory=list)  # the bench folders / commands the SynFlow side came from
    residual: dict[str, bool] = field(default_factory=dict)  # source architecture -> adds skip connections

    def at(self, arch: str, density: float) -> Point | None:
        """The architecture's point nearest ``density`` (in log scale), if one lies within ``reach``."""
        return nearest(self.points.get(arch, []), density, self.reach)

    def verdict(self, owners: Sequence[str], weights: Sequence[float], density: float) -> Verdict:
        """Weigh each target layer's nearest source architecture (``owners``) by the layer's weights."""
        total = float(sum(weights))
        covered = 0.0
        weighted = 0.0
        per_source: dict[str, float] = {}
        for arch, w in zip(owners, weights, strict=True):
            point = self.at(arch, density)
            if point is None:
                continue
            per_source[arch] = point.gap
            covered += w
            weighted += w * point.gap
        share = covered / total if total > 0 else 0.0
        if covered == 0 or share < self.min_covered:
            return Verdict(False, None, share, per_source)
        gap = weighted / covered
        return Verdict(gap > self.margin, gap, share, per_source)

    def to_card(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "reach": self.reach,
            "min_covered": self.min_covered,
            "provenance": list(self.provenance),
            "residual": dict(sorted(self.residual.items())),
            "points": {
                arch: [{"density": p.density, "imp": p.imp, "synflow": p.synflow} for p in pts]
                for arch, pts in sorted(self.points.items())
            },
        }

    @classmethod
    def from_card(cls, entry: Mapping[str, Any]) -> DensityEvidence | None:
        if not entry:
            return None
        return cls(
            points={
                str(arch): [Point(float(p["density"]), float(p["imp"]), float(p["synflow"])) for p in pts]
                for arch, pts in entry["points"].items()
            },
            margin=float(entry.get("margin", MARGIN)),
            reach=float(entry.get("reach", REACH)),
            min_covered=float(entry.get("min_covered", MIN_COVERED)),
            provenance=list(entry.get("provenance", [])),
            residual={str(k): bool(v) for k, v in entry.get("residual", {}).items()},
        )

    def sources_like(self, residual: bool) -> set[str] | None:
        """The source architectures of the same kind as the target (None: the card records no kinds)."""
        if not self.residual:
            return None
        return {arch for arch, r in self.residual.items() if r == residual}
