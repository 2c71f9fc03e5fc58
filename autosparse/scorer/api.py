"""A trained scorer, loaded from its checkpoint and ready to score a model's weights."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from autosparse.core.errors import CheckpointError
from autosparse.features import FeatureTable
from autosparse.scorer.checkpoint import Card, load_checkpoint, resolve_scorer
from autosparse.scorer.nets import Allocator, Ranker


@dataclass
class Scorer:
    card: Card
    ranker: nn.Module
    allocator: Allocator
    units: Allocator | None = None  # predicts how many output units per layer IMP keeps alive

    @property
    def features(self) -> tuple[str, ...]:
        """Every schema feature this scorer reads (ranker and allocator)."""
        names = [*self.card.ranker["features"], *self.card.allocator["features"], *self.card.units.get("features", [])]
        return tuple(dict.fromkeys(names))

    def score_layers(
        self, table: FeatureTable, model: nn.Module | None = None, input_shape=None
    ) -> dict[str, torch.Tensor]:
        """Within-layer scores (higher = keep) for every prunable weight, shaped like the weights."""
        if self.card.arch == "gnn":
            from autosparse.scorer.gnn import gnn_score_layers

            return gnn_score_layers(self.ranker, table, model, input_shape)
        return {lf.name: self.ranker.score_layer(lf).reshape(lf.shape) for lf in table.layers}  # type: ignore[operator]

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
def _load_cached(path: str, mtime: float) -> Scorer:
    card, tensors = load_checkpoint(path)
    if card.arch == "gnn":
        from autosparse.scorer.gnn import build_gnn_ranker

        ranker: nn.Module = build_gnn_ranker(card)
    else:
        ranker = Ranker(card.ranker["features"], card.ranker["hidden"])
    allocator = Allocator(card.allocator["features"], card.allocator["hidden"])
    units = Allocator(card.units["features"], card.units["hidden"]) if card.units else None
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
    return Scorer(card, ranker, allocator, units)


def load_scorer(name_or_path: str | Path) -> Scorer:
    """Load a shipped scorer by name (``trained_scorers/<name>``) or a scorer directory by path."""
    path = resolve_scorer(name_or_path)
    weights = path / "model.safetensors"
    mtime = weights.stat().st_mtime if weights.exists() else 0.0
    return _load_cached(str(path.resolve()), mtime)
