"""DPaI — Differentiable Pruning at Initialization with the node-path balance principle
(reference code QuanNguyen-Tri/DPaI).

NPB (:mod:`autosparse.pruners.npb`) balances effective nodes and paths with one integer program
per layer; DPaI learns the whole mask at once by gradient steps. Every prunable weight gets a
continuous score (``N(0, 1)`` at the start); the mask is the top-k of ``|score|`` per layer
(ERK budgets by default), and a straight-through estimator passes gradients from the mask back to
the scores. The signal is the log number of input→output paths ``log R`` of the masked network
(weights = mask, all-ones input, see :mod:`autosparse.topology.paths`), plus two terms that push weights
towards units and kernels that currently carry no path:

    g        = ∂ log R / ∂m                      (paths through, or that would run through, each weight)
    g_node   = g · [output unit of the weight is not effective]
    g_kernel = g · [kernel (conv) / weight (linear) is not effective]
    ascent direction = (1 − α)·g + α·((1 − β)·g_node + β·g_kernel)

taken with Adam on the scores (through ``|score|``, so the sign of a score never matters). The
quantity the reference reports — and logs here — is ``(1 − α)·log R + α·((1 − β)·log N + β·log K)``
with N effective nodes and K effective kernels; its node and kernel parts are step functions, so
the update above is what the method actually follows.

Differences from the reference: paths are counted exactly in float64 (the reference rescales
each layer's input by its maximum in float32 and adds the logs back, which is exact for chains
but re-weights the two branches of a residual block; rescaling here is global, see
:mod:`autosparse.topology.paths`); the kept count per layer is the exact allocation of
:mod:`autosparse.core.allocation` (the reference keeps ``numel − int(sparsity·numel)``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from autosparse.core.allocation import allocate, erk_counts, masks_from_counts, target_count, uniform_counts
from autosparse.core.errors import ConfigError
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.inputs import input_shape_of
from autosparse.pruners.registry import Pruner, PrunerConfig, register
from autosparse.pruners.scores import Scores
from autosparse.topology.paths import PathNetwork

log = logging.getLogger(__name__)


@dataclass
class DPaIConfig(PrunerConfig):
    """Defaults follow the reference's published run script (experiments/run.sh)."""

    scope: str = "erk"  # per-layer kept counts: erk (reference), uniform, or global top-k of |score|
    alpha: float = 0.99  # node/kernel terms vs the path term
    beta: float = 0.5  # kernel term vs node term
    lr: float = 0.005  # Adam learning rate on the scores
    steps: int = 3000  # optimisation steps
    log_every: int = 100  # steps between debug log lines
    input_shape: tuple[int, ...] | None = None  # needed when no data is passed


@dataclass
class DPaIState:
    """What one evaluation of the objective found (all counts on the current mask)."""

    log_paths: float
    effective_nodes: int
    effective_kernels: int
    effective_params: int
    objective: float
    grads: dict[str, torch.Tensor]  # ascent direction per mask entry


def _select(scores: dict[str, torch.Tensor], counts: dict[str, int] | None, total_keep: int) -> dict[str, torch.Tensor]:
    """Current mask: top-|score| per layer (``counts``) or over the whole network."""
    if counts is not None:
        out = {}
        for n, s in scores.items():
            flat = s.detach().abs().reshape(-1)
            m = torch.zeros_like(flat, dtype=torch.bool)
            m[torch.topk(flat, counts[n], sorted=False).indices] = True
            out[n] = m.reshape(s.shape)
        return out
    flat = torch.cat([s.detach().abs().reshape(-1) for s in scores.values()])
    keep = torch.zeros_like(flat, dtype=torch.bool)
    keep[torch.topk(flat, total_keep, sorted=False).indices] = True
    out, offset = {}, 0
    for n, s in scores.items():
        out[n] = keep[offset : offset + s.numel()].reshape(s.shape)
        offset += s.numel()
    return out


def evaluate(net: PathNetwork, masks: dict[str, torch.Tensor], alpha: float, beta: float) -> DPaIState:
    """Log paths, effective nodes / kernels / params and DPaI's ascent direction for ``masks``."""
    leaves = {n: m.to(device=net.device, dtype=torch.float64).requires_grad_(True) for n, m in masks.items()}
    # leaves are the masks as float64 edge values; gradients w.r.t. them are the path signal
    with torch.enable_grad():
        total, log2, _ = net.forward(leaves)
        value = float(total.detach())
        names = list(leaves)
        if value > 0:
            raw = torch.autograd.grad(torch.log(total), [leaves[n] for n in names], allow_unused=True)
        elif total.requires_grad:
            # no path at all: log R is -inf, but ∂R/∂m still says which single weights would
            # reconnect the network; rescale it so Adam sees a usable direction
            raw = torch.autograd.grad(total, [leaves[n] for n in names], allow_unused=True)
            peak = max((float(g.max()) for g in raw if g is not None), default=0.0)
            raw = tuple(g / peak if g is not None and peak > 0 else g for g in raw)
        else:
            raw = (None,) * len(names)
    log_paths = math.log(value) - log2 * math.log(2.0) if value > 0 else -math.inf
    nodes = kernels = params = 0
    grads = {}
    with torch.no_grad():
        for n, g in zip(names, raw):
            kept = masks[n].to(device=net.device, dtype=torch.bool)
            if g is None:
                grads[n] = torch.zeros(kept.shape, dtype=torch.float64, device=net.device)
                continue
            eff = (g > 0) & kept  # kept and on a path
            params += int(eff.sum())
            eff_out = eff.reshape(eff.shape[0], -1).any(dim=1)
            nodes += int(eff_out.sum())
            # ascent = g · [(1-α) + α(1-β)·(unit idle) + αβ·(kernel idle)], one multiply per weight
            node_term = (alpha * (1.0 - beta)) * (~eff_out).to(g.dtype).reshape(-1, *([1] * (g.dim() - 1)))
            if g.dim() > 2:
                eff_kernel = eff.reshape(eff.shape[0], eff.shape[1], -1).any(dim=2)
                kernels += int(eff_kernel.sum())
                kernel_term = (alpha * beta) * (~eff_kernel).to(g.dtype).reshape(
                    *eff_kernel.shape, *([1] * (g.dim() - 2))
                )
            else:
                kernels += int(eff.sum())
                kernel_term = (alpha * beta) * (~eff).to(g.dtype)
            grads[n] = g * (kernel_term + node_term + (1.0 - alpha))
    log_nodes = math.log(nodes) if nodes else -math.inf
    log_kernels = math.log(kernels) if kernels else -math.inf
    objective = (1.0 - alpha) * log_paths + alpha * ((1.0 - beta) * log_nodes + beta * log_kernels)
    return DPaIState(log_paths, nodes, kernels, params, objective, grads)


@register("dpai")
class DPaI(Pruner):
    own_inputs = True
    description = "DPaI (differentiable node-path balancing): learned scores, straight-through top-k, log paths"
    Config = DPaIConfig
    data_dependent = False

    def learned_scores(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Scores:
        """``|score|`` per weight after optimising for ``density`` (top-k of it is the mask)."""
        return self._optimise(model, data, density, seed)[0]

    def _optimise(
        self, model: nn.Module, data: PruningData | None, density: float, seed: int
    ) -> tuple[Scores, PathNetwork]:
        cfg: DPaIConfig = self.config  # type: ignore[assignment]
        _check(cfg)
        net = PathNetwork(model, input_shape_of(self.name, cfg.input_shape, data, model))
        counts = _counts(cfg.scope, {layer.name: layer.parameter.shape for layer in net.layers}, density)
        keep = target_count(sum(layer.parameter.numel() for layer in net.layers), density)
        gen = torch.Generator().manual_seed(int(seed))
        scores = {
            layer.name: torch.randn(layer.parameter.shape, generator=gen).to(net.device).requires_grad_(True)
            for layer in net.layers
        }
        opt = torch.optim.Adam(list(scores.values()), lr=cfg.lr)
        for step in tqdm(range(cfg.steps), desc="dpai steps", leave=False, disable=None):
            state = evaluate(net, _select(scores, counts, keep), cfg.alpha, cfg.beta)
            for n, s in scores.items():
                # straight-through: the mask's gradient reaches |score|, then the score via its sign
                s.grad = state.grads[n].to(s.dtype).mul_(torch.sign(s.detach())).neg_()
            opt.step()
            if cfg.log_every and step % cfg.log_every == 0:
                log.debug(
                    "dpai step %d: objective %.4f, log paths %.3f, nodes %d, kernels %d, params %d",
                    step,
                    state.objective,
                    state.log_paths,
                    state.effective_nodes,
                    state.effective_kernels,
                    state.effective_params,
                )
        return {n: s.detach().abs().cpu() for n, s in scores.items()}, net

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: DPaIConfig = self.config  # type: ignore[assignment]
        scores, net = self._optimise(model, data, density, seed)
        counts = _counts(cfg.scope, {n: s.shape for n, s in scores.items()}, density)
        if counts is None:
            masks = allocate(scores, density, scope="global").to_dict()
        else:
            masks = masks_from_counts(scores, counts).to_dict()
        state = evaluate(net, masks, cfg.alpha, cfg.beta)
        meta = {
            "scope": cfg.scope,
            "log_paths": state.log_paths,
            "effective_nodes": state.effective_nodes,
            "effective_kernels": state.effective_kernels,
            "effective_params": state.effective_params,
            "objective": state.objective,
        }
        return Masks(masks, meta=meta)


def _counts(scope: str, shapes: dict[str, torch.Size], density: float) -> dict[str, int] | None:
    """Per-layer kept counts, or None for one global top-k."""
    if scope == "erk":
        return erk_counts(shapes, density)
    if scope == "uniform":
        return uniform_counts(shapes, density)
    return None


def _check(cfg: DPaIConfig) -> None:
    if not (0.0 <= cfg.alpha <= 1.0 and 0.0 <= cfg.beta <= 1.0):
        raise ConfigError(f"dpai alpha and beta must be in [0, 1], got alpha={cfg.alpha}, beta={cfg.beta}")
    if cfg.steps < 0:
        raise ConfigError(f"dpai steps must be >= 0, got {cfg.steps}")
    if not 0 < cfg.lr < math.inf:  # written so NaN fails too (it reached Adam's own check); inf gave NaN scores
        raise ConfigError(f"dpai lr must be a finite number > 0, got {cfg.lr}")
    if cfg.log_every < 0:
        raise ConfigError(f"dpai log_every must be >= 0 (0: no progress lines), got {cfg.log_every}")
