"""What one ``autos`` call shares among its steps, and nothing beyond it.

The learned mask, the range guard, the density guard and the collapse check all want the same few
expensive things — one float64 path network of the model, SynFlow's mask at a density, the learned
scores — and each must be computed at most once per call and dropped when the call returns (a
pruner kept by a caller must not hold the last call's tensors). A :class:`Call` is that scope.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.core.model_io import model_device
from autosparse.core.seeding import kept_streams
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.registry import make_pruner
from autosparse.scorer.autos.config import AutosConfig
from autosparse.scorer.loaded import Scorer
from autosparse.topology.merges import network_kind
from autosparse.topology.paths import PathFlow, PathNetwork, PathStats, stats_from_flow


class PathCache:
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
        return stats_from_flow(flow, masks, self.network)

    def known(self, masks: Masks) -> tuple[Masks, tuple[int, ...], PathStats] | None:
        """The statistics of ``masks`` if a pass already measured them (no new pass)."""
        if not any(m is masks for m, _ in self._flows):
            return None
        return masks, self.shape, self.stats(masks)


@dataclass
class Call:
    """One ``masks`` call of ``autos``: its inputs, and the per-call results its steps share."""

    cfg: AutosConfig
    scorer: Scorer
    model: nn.Module
    data: PruningData | None
    density: float
    seed: int
    paths: PathCache = field(init=False)
    #: the learned scores of the last learned mask (the SynFlow fallback's mend chooses by them)
    scores: dict[str, torch.Tensor] | None = field(default=None, init=False)
    #: warnings about the learned mask, said only if it is the one returned (a guard may hand the net over)
    about_learned: list[Callable[[], None]] = field(default_factory=list, init=False)
    _synflow: dict[float, Masks] = field(default_factory=dict, init=False)
    _kind: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.paths = PathCache(self.model, self.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """The model's input shape (empty when neither data nor ``input_shape`` says it)."""
        return tuple(self.data.input_shape) if self.data else tuple(self.cfg.input_shape)

    @property
    def network(self) -> str:
        """The network's layer set (names and shapes) as a short digest: the guards' warnings are said once
        per network, not once per process (a second model handed to SynFlow's mask was told nothing)."""
        layers = tuple((layer.name, tuple(layer.shape)) for layer in prunable_layers(self.model))
        return hashlib.sha256(repr(layers).encode()).hexdigest()[:12]

    def network_kind(self) -> str:
        """``plain-conv``, ``plain`` or ``residual``, probed once per call (one batch-1 forward pass);
        raises :class:`~autosparse.topology.merges.ProbeError` where the forward pass fails."""
        if self._kind is None:
            self._kind = network_kind(self.model, self.shape)
        return self._kind

    def synflow_masks(self, density: float) -> Masks:
        """SynFlow's own mask at ``density`` (100 rounds; data-free and seed-free), computed once
        per call: the guard's SynFlow shares and the collapse and density fallbacks all read it."""
        if density not in self._synflow:
            with kept_streams(model_device(self.model)):
                self._synflow[density] = make_pruner("synflow").masks(self.model, self.data, density)
        return self._synflow[density]
