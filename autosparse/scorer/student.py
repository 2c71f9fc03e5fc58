"""Where the student was worth using: a scorer's own learned masks against SynFlow's, on validation
nets of each kind, by density.

Why a second kind of evidence: the density guard (:mod:`autosparse.scorer.evidence`) asks whether
the *teacher* — IMP — beat SynFlow on the nearest sources. It cannot see a student that fails where
its teacher succeeded, and on plain conv nets that is what the shipped scorers do: on the 1-D CNN
sources IMP beat SynFlow by 6-30 points, yet the learned masks of held-out cnn1d widths trained
7-15 points *below* SynFlow's, and no option of the ranker closed it (docs/SCORER.md, "MNIST-1D:
where the learned ranker falls short"). The remedy asked by issue #15 — never do worse than a
safe rule because of extrapolating — needs the student's own record.

The evidence: bench cells of the scorer's learned mask (``autos`` with every check that can put
SynFlow's mask in its place off, the collapse rule included: a disconnected learned mask is the
student's failure, not SynFlow's success) and of SynFlow's, same net, seed, data and recipe, on
*validation* shapes that are in no store (held out of training, never a test net), grouped by
network kind (:func:`network_kind <autosparse.topology.merges.network_kind>`: ``plain-conv``,
``plain``, ``residual``). At prune time
each validation net of the target's kind speaks through its point nearest the target density
(within ``reach``); where SynFlow's mean advantage over the learned masks exceeds ``margin`` (the
density guard's constants, fixed before either kind of evidence was measured), ``autos`` uses
SynFlow's mask and says so. A kind without evidence keeps the learned mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from autosparse.scorer.evidence import MARGIN, REACH, nearest

KINDS = ("plain-conv", "plain", "residual")


@dataclass(frozen=True)
class StudentPoint:
    """One validation net at one density: the learned masks' mean accuracy over seeds and SynFlow's."""

    net: str
    density: float
    learned: float
    synflow: float
    seeds: int

    @property
    def gap(self) -> float:
        return self.synflow - self.learned


@dataclass(frozen=True)
class StudentVerdict:
    """The student check's answer for one target at one density."""

    prefer_synflow: bool
    kind: str
    gap: float | None  # SynFlow minus learned, averaged over the kind's validation nets (None: no evidence)
    per_net: dict[str, float]  # validation net -> its gap at its point nearest the density

    def to_meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "gap": None if self.gap is None else round(self.gap, 4),
            "per_net": {k: round(v, 4) for k, v in sorted(self.per_net.items())},
        }


@dataclass
class StudentEvidence:
    """The learned masks against SynFlow's per network kind and density, as the scorer's card stores it."""

    points: dict[str, list[StudentPoint]]  # kind -> points
    margin: float = MARGIN
    reach: float = REACH
    provenance: list[str] = field(default_factory=list)  # the bench folders the cells came from

    def verdict(self, kind: str, density: float) -> StudentVerdict:
        """Each validation net of ``kind`` votes once, with its point nearest ``density`` within reach."""
        by_net: dict[str, list[StudentPoint]] = {}
        for p in self.points.get(kind, []):
            by_net.setdefault(p.net, []).append(p)
        per_net = {
            net: point.gap for net, pts in by_net.items() if (point := nearest(pts, density, self.reach)) is not None
        }
        if not per_net:
            return StudentVerdict(False, kind, None, {})
        gap = sum(per_net.values()) / len(per_net)
        return StudentVerdict(gap > self.margin, kind, gap, per_net)

    def to_card(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "reach": self.reach,
            "provenance": list(self.provenance),
            "points": {
                kind: [
                    {"net": p.net, "density": p.density, "learned": p.learned, "synflow": p.synflow, "seeds": p.seeds}
                    for p in sorted(pts, key=lambda p: (p.net, p.density))
                ]
                for kind, pts in sorted(self.points.items())
            },
        }

    @classmethod
    def from_card(cls, entry: Mapping[str, Any]) -> StudentEvidence | None:
        if not entry or not entry.get("points"):
            return None
        return cls(
            points={
                str(kind): [
                    StudentPoint(
                        str(p["net"]), float(p["density"]), float(p["learned"]), float(p["synflow"]), int(p["seeds"])
                    )
                    for p in pts
                ]
                for kind, pts in entry["points"].items()
            },
            margin=float(entry.get("margin", MARGIN)),
            reach=float(entry.get("reach", REACH)),
            provenance=list(entry.get("provenance", [])),
        )
