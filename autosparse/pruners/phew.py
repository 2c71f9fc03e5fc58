"""PHEW — Paths with Higher-Edge Weights (Patil & Dovrolis, ICML 2021).

SynFlow-L2 keeps the input-output paths with the largest weight products, which maximises the
path kernel but funnels them through a few units ("bottleneck" layers). PHEW keeps the same
bias towards heavy paths while staying wide: it grows the mask from *random walks*, each a
complete input→output path whose next hop is drawn with probability proportional to the
connection's initial weight magnitude. Because whole paths are added, no layer can collapse.

As in the reference implementation (``phew_masks``): walks alternate between forward walks
seeded at input units and backward walks seeded at output units, seeds go round-robin over the
units so every input and output is covered, and in a convolution a walk moves between
*channels* (probability ∝ the L1 norm of the kernel connecting them) and then picks one kernel
position (probability ∝ |w| within that kernel), or the whole kernel with
``kernel_conserved=True``. Where a convolution feeds a linear layer (a flatten), a forward walk
moves from a channel to one of that channel's flattened features uniformly, and a backward walk
from a feature to the channel it came from. Walks stop as soon as the target count is reached,
so the mask keeps exactly ``round(density · total)`` weights; should the walks stall (very high
density, where most new walks revisit kept edges), the remainder is filled with the largest
``|θ|`` among unvisited weights.

Approximation: the prunable layers are treated as a *chain in registration order*. This is exact
for MLPs and plain CNNs (VGG); for networks with residual or parallel branches (ResNets,
attention) a walk follows the registration order through every layer, moving between layers of
mismatched width proportionally (unit ``i`` of ``n`` maps to the unit(s) at the same relative
position of the next layer). The reference special-cases one ResNet layout instead; a walk here
still visits every layer, so no layer is ever empty.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from autosparse.core.allocation import allocate, target_count
from autosparse.core.errors import ConfigError
from autosparse.core.layers import PrunableLayer, prunable_layers
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores
from autosparse.pruners.weights import effective_weight

log = logging.getLogger(__name__)


@dataclass
class PHEWConfig(PrunerConfig):
    kernel_conserved: bool = False  # reference README: phew_masks(..., kernel_conserved=False)
    max_walks: int | None = None  # safety cap on walks (None = 10 × target + 1000), then fill by |θ|
    score_density: float = 0.1  # density of the walk whose visit order scores() reports


class _Layer:
    """One prunable weight seen as a bipartite graph between input and output units."""

    def __init__(self, layer: PrunableLayer) -> None:
        w = effective_weight(layer).abs().to("cpu", torch.float64)
        self.shape = tuple(w.shape)
        self.out = int(w.shape[0])
        self.in_pg = int(w.shape[1]) if w.dim() > 1 else 1
        self.groups = int(getattr(layer.module, "groups", 1)) if layer.kind == "conv" else 1
        self.inp = self.in_pg * self.groups
        self.out_pg = self.out // self.groups
        a = w.reshape(self.out, self.in_pg, -1).numpy()
        self.k = a.shape[2]
        self.abs_flat = a.reshape(-1)
        norm = a.sum(axis=2)  # (out, in_pg): channel-to-channel connection strength
        # forward: from input unit -> output unit, per group: (groups, in_pg, out_pg) cumulative sums
        fwd = norm.reshape(self.groups, self.out_pg, self.in_pg).transpose(0, 2, 1)
        self.fwd_cdf = np.cumsum(fwd, axis=2)
        self.bwd_cdf = np.cumsum(norm, axis=1)  # (out, in_pg)
        self.ker_cdf = np.cumsum(a, axis=2)  # (out, in_pg, k)

    def flat(self, o: int, local: int, kpos: int) -> int:
        return (o * self.in_pg + local) * self.k + kpos


def _draw(cdf: np.ndarray, rng: np.random.Generator) -> int:
    """Index drawn with probability ∝ the increments of ``cdf`` (uniform if they are all zero)."""
    total = cdf[-1]
    if total <= 0:
        return int(rng.integers(len(cdf)))
    return min(int(np.searchsorted(cdf, rng.random() * total, side="right")), len(cdf) - 1)


def _map_unit(idx: int, n_from: int, n_to: int, rng: np.random.Generator) -> int:
    """Carry a unit across layers of different width (flatten, or the chain approximation).

    Unit ``idx`` of ``n_from`` covers the relative interval [idx/n_from, (idx+1)/n_from); the
    next layer's units overlapping it are the candidates (one when shrinking, a block when a
    channel is flattened into features), and one is chosen uniformly.
    """
    if n_from == n_to:
        return idx
    lo = idx * n_to // n_from
    hi = max(lo + 1, (idx + 1) * n_to // n_from)
    return lo if hi - lo == 1 else int(rng.integers(lo, hi))


class _Walker:
    def __init__(self, layers: list[_Layer], target: int, kernel_conserved: bool, rng: np.random.Generator) -> None:
        self.layers = layers
        self.target = target
        self.kernel_conserved = kernel_conserved
        self.rng = rng
        self.order = [np.full(lay.abs_flat.size, -1, dtype=np.int64) for lay in layers]
        self.count = 0

    @property
    def done(self) -> bool:
        return self.count >= self.target

    def _visit(self, li: int, o: int, local: int, kpos: int) -> None:
        lay, order = self.layers[li], self.order[li]
        positions = [kpos]
        if self.kernel_conserved and lay.k > 1:
            # the chosen position first, then the rest of the kernel by |w|, so a trimmed walk keeps the heaviest
            start = lay.flat(o, local, 0)
            rest = np.argsort(-lay.abs_flat[start : start + lay.k], kind="stable")
            positions += [int(p) for p in rest if int(p) != kpos]
        for p in positions:
            if self.done:
                return
            f = lay.flat(o, local, p)
            if order[f] < 0:
                order[f] = self.count
                self.count += 1

    def forward(self, unit: int) -> None:
        rng = self.rng
        for li, lay in enumerate(self.layers):
            g, local = divmod(unit, lay.in_pg)
            o = g * lay.out_pg + _draw(lay.fwd_cdf[g, local], rng)
            kpos = _draw(lay.ker_cdf[o, local], rng)
            self._visit(li, o, local, kpos)
            if self.done:
                return
            if li + 1 < len(self.layers):
                unit = _map_unit(o, lay.out, self.layers[li + 1].inp, rng)

    def backward(self, unit: int) -> None:
        rng = self.rng
        for li in range(len(self.layers) - 1, -1, -1):
            lay = self.layers[li]
            o = unit
            local = _draw(lay.bwd_cdf[o], rng)
            kpos = _draw(lay.ker_cdf[o, local], rng)
            self._visit(li, o, local, kpos)
            if self.done:
                return
            if li > 0:
                g = o // lay.out_pg
                unit = _map_unit(g * lay.in_pg + local, lay.inp, self.layers[li - 1].out, rng)


def walk_order(
    model: nn.Module, target: int, *, seed: int = 0, kernel_conserved: bool = False, max_walks: int | None = None
) -> tuple[dict[str, torch.Tensor], int]:
    """First-visit order of every prunable weight under PHEW's walks (−1 = never visited).

    Walks run until ``target`` distinct weights are visited (the last walk is cut there) or
    ``max_walks`` walks have run; returns the orders keyed by weight name and the count visited.
    """
    plist = prunable_layers(model)
    layers = [_Layer(layer) for layer in plist]
    total = sum(lay.abs_flat.size for lay in layers)
    target = min(int(target), total)
    rng = np.random.default_rng(int(seed) % 2**64)  # torch's seeds may be negative, numpy's may not
    walker = _Walker(layers, target, kernel_conserved, rng)
    limit = max_walks if max_walks is not None else 10 * target + 1000
    n_in, n_out = layers[0].inp, layers[-1].out
    walks = 0
    with tqdm(total=target, desc="phew walks", leave=False, disable=None) as bar:
        while not walker.done and walks < limit:
            before = walker.count
            if walks % 2 == 0:
                walker.forward((walks // 2) % n_in)
            else:
                walker.backward((walks // 2) % n_out)
            walks += 1
            bar.update(walker.count - before)
    if not walker.done:
        log.info("phew: %d walks visited %d of %d weights; filling the rest by |θ|", walks, walker.count, target)
    orders = {
        layer.name: torch.from_numpy(order.reshape(lay.shape))
        for layer, lay, order in zip(plist, layers, walker.order, strict=True)
    }
    return orders, walker.count


def order_scores(model: nn.Module, orders: dict[str, torch.Tensor], visited: int) -> Scores:
    """Scores that rank visited weights by first visit (earlier = higher) above all unvisited
    ones, which are ranked by ``|θ|``; a top-k of these reproduces the walk's mask exactly."""
    weights = {layer.name: effective_weight(layer).abs().to("cpu", torch.float64) for layer in prunable_layers(model)}
    wmax = max(float(w.max()) for w in weights.values()) or 1.0
    scale = float(max(visited, 1))
    out = {}
    for name, order in orders.items():
        seen = order >= 0
        out[name] = torch.where(seen, 2.0 + (scale - order.to(torch.float64)) / scale, weights[name] / wmax)
    return out


@register("phew")
class PHEW(ScoringPruner):
    Config = PHEWConfig
    data_dependent = False
    description = (
        "PHEW (Patil & Dovrolis 2021): data-free; keeps input-output paths grown by random walks biased "
        "towards large |θ|"
    )

    def _check(self) -> PHEWConfig:
        cfg: PHEWConfig = self.config  # type: ignore[assignment]
        if cfg.max_walks is not None and cfg.max_walks < 1:
            raise ConfigError(f"max_walks must be >= 1 or None, got {cfg.max_walks}")
        if not 0.0 < cfg.score_density <= 1.0:
            raise ConfigError(f"score_density must be in (0, 1], got {cfg.score_density}")
        return cfg

    def _scores_at(self, model: nn.Module, density: float, seed: int) -> Scores:
        cfg = self._check()
        total = sum(layer.parameter.numel() for layer in prunable_layers(model))
        orders, visited = walk_order(
            model,
            target_count(total, density),
            seed=seed,
            kernel_conserved=cfg.kernel_conserved,
            max_walks=cfg.max_walks,
        )
        return order_scores(model, orders, visited)

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        """Walk order at ``score_density``: a global top-k at that density (or below) is PHEW's mask."""
        return self._scores_at(model, self._check().score_density, seed)

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        """Walk until exactly ``round(density · total)`` weights are kept (global scope: the walks
        decide every layer's share); with ``uniform``/``erk`` scope the walk order ranks within
        each layer instead."""
        return allocate(self._scores_at(model, density, seed), density, scope=self.config.scope)  # type: ignore[arg-type]
