"""A trained scorer, loaded from its checkpoint and ready to score a model's weights.

Loading is cached per (path, weights mtime, card mtime): ``autos`` asks for its scorer on every
prune call (every cell of a bench grid), and a checkpoint rewritten in place (``--add-unit-head``,
or a card given evidence by ``--add-evidence``) must be read again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from autosparse.core.errors import CheckpointError
from autosparse.features import FeatureTable
from autosparse.scorer.archs.base import get_arch
from autosparse.scorer.archs.registry import arch_names
from autosparse.scorer.checkpoint import CARD_FILE, Card, load_checkpoint, resolve_scorer
from autosparse.scorer.coverage import Coverage
from autosparse.scorer.evidence import DensityEvidence
from autosparse.scorer.nets import Allocator, AllocatorEnsemble, LayerHead
from autosparse.scorer.student import StudentEvidence


@dataclass
class Scorer:
    card: Card
    ranker: nn.Module
    allocator: LayerHead  # one Allocator, or an AllocatorEnsemble (the card's allocator.members > 1)
    units: Allocator | None = None  # predicts how many output units per layer IMP keeps alive
    coverage: Coverage | None = None  # where the allocator was trained (None: an old card without it)
    evidence: DensityEvidence | None = None  # where its teacher beat SynFlow on the sources (None: not measured)
    student: StudentEvidence | None = None  # where SynFlow beat its own masks on validation nets (None: not measured)

    @property
    def features(self) -> tuple[str, ...]:
        """Every schema feature this scorer reads (ranker and allocator)."""
        names = [*self.card.ranker["features"], *self.card.allocator["features"], *self.card.units.get("features", [])]
        return tuple(dict.fromkeys(names))

    def score_layers(
        self, table: FeatureTable, model: nn.Module | None = None, input_shape: Sequence[int] | None = None
    ) -> dict[str, torch.Tensor]:
        """Within-layer scores (higher = keep) for every prunable weight, shaped like the weights.

        ``model`` and ``input_shape`` are for architectures that read the network's graph (the GNN).
        """
        return get_arch(self.card.arch).score_layers(self.ranker, table, model, input_shape)

    def layer_densities(self, table: FeatureTable, density: float) -> list[float]:
        return self.allocator.layer_densities(table.layers, density)

    def unit_fractions(self, table: FeatureTable, density: float, scale: float | None = None) -> list[float] | None:
        """Fraction of each layer's output units to keep alive (None: no unit head).

        The head predicts IMP's alive fraction; the card's ``scale`` (chosen on the held-out
        source architecture, see docs/SCORER.md) multiplies it, unless ``scale`` is given.
        """
        if self.units is None:
            return None
        scale = float(self.card.units.get("scale", 1.0)) if scale is None else scale
        return [min(1.0, scale * f) for f in self.units.unit_fractions(table.layers, density)]


def _split(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime: int, card_mtime: int) -> Scorer:
    card, tensors = load_checkpoint(path)
    if card.arch not in arch_names():
        raise CheckpointError(
            f"{path} holds a {card.arch!r} scorer; this autosparse knows {', '.join(arch_names())} — "
            "use the version that trained it or retrain the scorer"
        )
    arch = get_arch(card.arch)
    try:
        ranker = arch.from_card(card)
        allocator = allocator_from_card(card.allocator)
        units = Allocator(card.units["features"], card.units["hidden"]) if card.units else None
        float(card.units.get("scale", 1.0))  # read at prune time: a bad one failed there, mid-call
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # a hand-edited card gave a traceback from the architecture's code (helper)
        what = f"no key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise CheckpointError(
            f"the card of {path} does not describe a scorer this autosparse can build ({what}); it was edited or "
            "damaged — restore it from a copy, or retrain the scorer"
        ) from None
    try:
        ranker.load_state_dict(_split(tensors, "ranker."))
        allocator.load_state_dict(_split(tensors, "allocator."))
        if units is not None:
            units.load_state_dict(_split(tensors, "units."))
            units.eval()
    except RuntimeError as exc:
        raise CheckpointError(
            f"weights in {path} do not fit the architecture on its card: {exc}".splitlines()[0]
        ) from exc
    ranker.eval()
    allocator.eval()
    return Scorer(
        card,
        ranker,
        allocator,
        units,
        Coverage.from_card(card.coverage),
        DensityEvidence.from_card(card.evidence),
        StudentEvidence.from_card(card.student),
    )


def allocator_from_card(entry: dict) -> LayerHead:
    """The allocator a card's ``allocator`` entry describes, untrained: one network, or ``members`` of them
    (their weights under ``allocator.members.<i>.``; a card without ``members`` has one)."""
    members = int(entry.get("members", 1))
    nets = [Allocator(entry["features"], entry["hidden"]) for _ in range(members)]
    return nets[0] if members == 1 else AllocatorEnsemble(nets)


def load_scorer(name_or_path: str | Path) -> Scorer:
    """Load a shipped scorer by name (``trained_scorers/<name>``) or a scorer directory by path."""
    path = resolve_scorer(name_or_path)
    weights = path / "model.safetensors"
    mtime = weights.stat().st_mtime_ns if weights.exists() else 0
    card = path / CARD_FILE
    card_mtime = card.stat().st_mtime_ns if card.exists() else 0
    return _load_cached(str(path.resolve()), mtime, card_mtime)
