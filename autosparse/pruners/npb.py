"""NPB — Node-Path Balancing (Pham et al., NeurIPS 2023; reference code pvh1602/NPB).

A data-free pruner that *builds* the sparse topology instead of ranking weights. Layer by layer,
from the input to the output, it solves an integer program that chooses which connections of
the layer to keep, under the layer's exact budget (ERK layer densities by default), to maximise

    α · A  +  (1 − α) · B  +  β · Reg

* ``A`` — effective nodes: the fraction of the layer's input and output units that keep at least
  ``min_param_to_node`` connections;
* ``B`` — effective paths: ``Σ_io P_i · M_io`` normalised by the largest value the budget allows,
  where ``P_i`` is the number of input→unit paths already reaching input unit ``i`` (computed
  with the masks chosen for the earlier layers) and ``M_io`` is how many weights connect ``i`` to
  output unit ``o`` (0/1 for a Linear; 0…``max_param_per_kernel`` kernel elements for a Conv);
* ``Reg`` (convolutions only) — the fraction of the budget spent on distinct kernels, which
  discourages stacking the whole budget into few kernels.

A convolution is optimised at the channel level — how many elements each (out, in) kernel keeps
— and the elements are then placed in the kernel at random (the reference default) or by
``|θ|``. The program is a mixed-integer *linear* program: the ``max(0, ·)`` terms become
continuous slack variables that are tight at the optimum, and ``scipy.optimize.milp`` (HiGHS)
solves it. As in the reference, big layers are split into chunks of output units, each an
independent program with an equal share of the layer's budget.

Differences from the reference, all deliberate:

* the budget is an *equality* (the reference's ``≤`` may leave weights unused, which breaks the
  exact kept count every autosparse mask has); chunk budgets are an exact split of the layer's;
* ``path_norm="bound"`` normalises ``B`` by the true maximum of the path term under the budget.
  The reference computes that bound with a slice that silently becomes the *whole* sorted array
  when fewer than one input unit can be fully connected (``x[-0:]``), which at high sparsity
  shrinks ``B`` by orders of magnitude and lets the node term dominate; ``path_norm="reference"``
  reproduces that arithmetic exactly;
* input and output units are shuffled (seeded) before each solve, so among equally good
  solutions the solver's preference for low indices does not pick the same corner pixels in
  every chunk; biases do not count as paths (the reference sets them to one);
* the program is solved in an equivalent per-input form with O(C_in) variables whenever that is
  exact (``P`` depends on the input unit only and a unit needs one connection, the reference's
  defaults): the path and kernel terms depend only on how many elements and kernels each input
  feeds, and any such choice reaches the most output units by a cyclic assignment, so both forms
  have the same optimum (tested against the full form and brute force). The full form, one
  integer per kernel, is used otherwise and via ``npb_program.solve_layer(..., formulation="full")``;
* the reference's post-pass that moves ineffective weights of convolutions into effective
  kernels is generalised: in every layer, each kept weight that lies on no input→output path
  is moved to the unkept position that would carry the most paths (which can only add paths
  and effective nodes); architecture-specific knobs of the reference (lowering
  ``max_param_per_kernel`` after each ResNet stage / VGG block) are not reproduced;
* HiGHS runs with a per-program time limit; when it stops early it returns its best solution
  so far (the run is then no longer bit-reproducible; raise ``time_limit`` if that matters).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from autosparse.core.allocation import erk_counts, uniform_counts
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.inputs import input_shape_of
from autosparse.pruners.npb_program import FORMULATIONS, PATH_NORMS, solve_layer
from autosparse.pruners.registry import Pruner, PrunerConfig, register
from autosparse.topology.paths import PathNetwork, stats_from_flow

log = logging.getLogger(__name__)

KERNEL_FILLS = ("random", "magnitude")


@dataclass
class NPBConfig(PrunerConfig):
    """Defaults follow the reference's published ResNet-20/CIFAR-10 run (scripts/run.sh)."""

    scope: str = "erk"  # per-layer budgets: erk (reference default) or uniform
    alpha: float = 0.01  # weight of the node term (1 - alpha on the path term)
    beta: float = 1.0  # weight of the distinct-kernel regulariser (convolutions only)
    max_param_per_kernel: int | None = None  # None: the whole kernel (run.sh: 9 for 3x3)
    min_param_to_node: int = 1  # connections a unit needs to count as effective
    chunk_size: int = 32  # output channels per program when a conv layer is chunked
    conv_chunk_threshold: int = 128 * 128  # chunk a conv when C_out * C_in exceeds this
    linear_chunk_size: int = 10  # output units per program when a linear layer is chunked
    linear_chunk_threshold: int = 512 * 10  # chunk a linear layer when out * in exceeds this
    time_limit: float = 30.0  # seconds per integer program
    mip_rel_gap: float = 1e-4  # HiGHS's default optimality gap
    path_norm: str = "bound"  # bound | reference (see the module docstring)
    formulation: str = "auto"  # auto | full | aggregated (see solve_layer)
    kernel_fill: str = "random"  # random (reference default) | magnitude (by |θ| at init)
    reassign_ineffective: bool = True  # move kept weights on no input-output path to random effective positions
    input_shape: tuple[int, ...] | None = None  # needed when no data is passed


def _split(total: int, sizes: Sequence[int], caps: Sequence[int]) -> list[int]:
    """``total`` split over chunks proportionally to ``sizes`` (largest remainder, each <= cap)."""
    whole = sum(sizes)
    ideal = [total * s / whole for s in sizes]
    out = [min(c, int(math.floor(x))) for x, c in zip(ideal, caps)]
    order = sorted(range(len(sizes)), key=lambda j: (-(ideal[j] - math.floor(ideal[j])), j))
    left = total - sum(out)
    while left > 0:
        for j in order:
            if left and out[j] < caps[j]:
                out[j] += 1
                left -= 1
    return out


def _unit_totals(x: torch.Tensor, kind_2d: bool) -> torch.Tensor:
    """Paths reaching each input unit of a layer: per feature (last dim) or per channel (dim 1)."""
    unit = x.dim() - 1 if kind_2d else 1
    return x.sum(dim=tuple(d for d in range(x.dim()) if d != unit))


def _fill_kernels(
    counts: np.ndarray, shape: torch.Size, gen: torch.Generator, magnitude: torch.Tensor | None
) -> torch.Tensor:
    """Place counts[i, o] elements in kernel (o, i): at random or by largest |θ|."""
    c_out, c_in = shape[0], shape[1]
    kk = math.prod(shape[2:])
    if magnitude is not None:
        keys = -magnitude.detach().abs().reshape(c_out, c_in, kk).to(torch.float64).cpu()
    else:
        keys = torch.rand((c_out, c_in, kk), generator=gen, dtype=torch.float64)
    rank = torch.argsort(torch.argsort(keys, dim=-1, stable=True), dim=-1, stable=True)
    want = torch.as_tensor(counts.T.copy(), dtype=torch.int64)[:, :, None]
    return (rank < want).reshape(shape)


@register("npb")
class NPB(Pruner):
    own_inputs = True
    description = "Node-Path Balancing (Pham et al. 2023): per-layer integer programs over nodes and paths"
    Config = NPBConfig
    data_dependent = False

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: NPBConfig = self.config  # type: ignore[assignment]
        _check(cfg)
        shape = input_shape_of(self.name, cfg.input_shape, data, model)
        net = PathNetwork(model, shape, device="cpu")
        shapes = {layer.name: layer.parameter.shape for layer in net.layers}
        if cfg.scope == "erk":
            budgets = erk_counts(shapes, density)
        elif cfg.scope == "uniform":
            budgets = uniform_counts(shapes, density)
        else:
            raise ConfigError("npb needs per-layer budgets: use scope='erk' (the reference's) or scope='uniform'")
        gen = torch.Generator().manual_seed(int(seed))
        rng = np.random.default_rng(int(seed) % 2**64)  # torch's seeds may be negative, numpy's may not
        theta = {layer.name: layer.weight.detach() for layer in prunable_layers(model)}
        weights = {n: torch.ones(s, dtype=torch.float64) for n, s in shapes.items()}
        modules = {layer.name: layer.module for layer in net.layers}
        statuses: dict[str, int] = {}
        for name in tqdm(net.order, desc="npb layers", leave=False, disable=None):
            inputs = net.layer_inputs(weights)
            w_shape = shapes[name]
            kind_2d = len(w_shape) == 2
            if name in inputs:
                p_full = _unit_totals(inputs[name], kind_2d).cpu().numpy().astype(np.float64)
            else:  # never reached by the forward pass: nothing to balance but nodes
                groups = getattr(modules[name], "groups", 1)
                p_full = np.ones(w_shape[1] * groups)
            if p_full.max() > 0:
                p_full = p_full / p_full.max()
            p = _grouped(p_full, w_shape, getattr(modules[name], "groups", 1))
            mask = self._solve(name, w_shape, p, budgets[name], cfg, rng, gen, theta[name], statuses)
            weights[name] = mask.to(torch.float64)
        masks = {n: weights[n].bool() for n in shapes}
        if cfg.reassign_ineffective:
            masks = _reassign(net, masks, gen)
        flow = net.flow({n: m.to(torch.float64) for n, m in masks.items()})
        st = stats_from_flow(flow, masks)
        meta = {
            "scope": cfg.scope,
            "log_paths": st.log_paths,
            "effective_nodes": st.effective_nodes,
            "effective_params": st.effective_params,
            "solver": statuses,
        }
        return Masks(masks, meta=meta)

    def _solve(
        self,
        name: str,
        w_shape: torch.Size,
        p: np.ndarray,
        budget: int,
        cfg: NPBConfig,
        rng: np.random.Generator,
        gen: torch.Generator,
        theta: torch.Tensor,
        statuses: dict[str, int],
    ) -> torch.Tensor:
        c_out, c_in = int(w_shape[0]), int(w_shape[1])
        kk = math.prod(w_shape[2:]) if len(w_shape) > 2 else 1
        conv = len(w_shape) > 2
        k = kk if cfg.max_param_per_kernel is None else min(kk, int(cfg.max_param_per_kernel))
        k = max(k, math.ceil(budget / (c_in * c_out)))  # the budget must fit
        min_n = max(1, min(int(cfg.min_param_to_node), math.ceil(budget / (c_in * c_out)))) if conv else 1
        beta = cfg.beta if conv and k > 1 else 0.0  # the reference uses beta=0 for linear layers
        if conv:
            size, chunked = cfg.chunk_size, c_out * c_in > cfg.conv_chunk_threshold
        else:
            size, chunked = cfg.linear_chunk_size, c_out * c_in > cfg.linear_chunk_threshold
        bounds = [(s, min(s + size, c_out)) for s in range(0, c_out, size)] if chunked else [(0, c_out)]
        sizes = [b - a for a, b in bounds]
        chunk_budgets = _split(budget, sizes, [s * c_in * k for s in sizes])
        counts = np.zeros((c_in, c_out), dtype=np.int64)
        for (a, b), cb in zip(bounds, chunk_budgets):
            sol = solve_layer(
                p[:, a:b],
                b - a,
                cb,
                alpha=cfg.alpha,
                beta=beta,
                max_per_kernel=k,
                min_per_node=min_n,
                path_norm=cfg.path_norm,
                time_limit=cfg.time_limit,
                mip_rel_gap=cfg.mip_rel_gap,
                rng=rng,
                formulation=cfg.formulation,
            )
            counts[:, a:b] = sol.counts
            statuses[sol.status] = statuses.get(sol.status, 0) + 1
        if not conv:
            return torch.as_tensor(counts.T.copy() > 0)
        return _fill_kernels(counts, w_shape, gen, theta if cfg.kernel_fill == "magnitude" else None)


def _grouped(p_full: np.ndarray, w_shape: torch.Size, groups: int) -> np.ndarray:
    """P as a (C_in of the weight, C_out) matrix; grouped convs see only their group's inputs."""
    c_out, c_in = int(w_shape[0]), int(w_shape[1])
    if groups <= 1 or p_full.size == c_in:
        return np.repeat(p_full[:c_in, None], c_out, axis=1)
    per_group = c_out // groups
    group_of = np.arange(c_out) // per_group
    return np.stack([p_full[g * c_in : (g + 1) * c_in] for g in group_of], axis=1)


def _reassign(net: PathNetwork, masks: dict[str, torch.Tensor], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Move every kept weight that lies on no path to the unkept position that would carry the
    most paths, layer by layer from the input (a move can make earlier-ineffective weights of
    other layers effective, so the flow is recomputed after each layer that changed)."""
    masks = {n: m.clone() for n, m in masks.items()}
    flow = net.flow({n: m.to(torch.float64) for n, m in masks.items()})
    for name in net.order:
        kept = masks[name].reshape(-1)
        eff = torch.isfinite(flow.weight_log_paths[name]).reshape(-1)
        idle = torch.nonzero(kept & ~eff).reshape(-1)
        if idle.numel() == 0:
            continue
        potential = flow.weight_log_potential[name].reshape(-1)
        free = torch.nonzero(~kept & torch.isfinite(potential)).reshape(-1)
        moves = min(idle.numel(), free.numel())
        if moves == 0:
            continue
        tie = torch.randperm(free.numel(), generator=gen)
        order = torch.argsort(potential[free][tie], descending=True, stable=True)
        chosen = free[tie][order[:moves]]
        dropped = idle[torch.randperm(idle.numel(), generator=gen)[:moves]]
        kept = kept.clone()
        kept[dropped] = False
        kept[chosen] = True
        masks[name] = kept.reshape(masks[name].shape)
        log.debug("npb: moved %d ineffective weights of %s onto paths", moves, name)
        flow = net.flow({n: m.to(torch.float64) for n, m in masks.items()})
    return masks


def _check(cfg: NPBConfig) -> None:
    if not 0.0 <= cfg.alpha <= 1.0:
        raise ConfigError(f"npb alpha must be in [0, 1], got {cfg.alpha}")
    if not cfg.beta >= 0:  # written so NaN fails too
        raise ConfigError(f"npb beta must be >= 0, got {cfg.beta}")
    if cfg.path_norm not in PATH_NORMS:
        raise ConfigError(f"npb path_norm must be one of {PATH_NORMS}, got {cfg.path_norm!r}")
    if cfg.formulation not in FORMULATIONS:
        raise ConfigError(f"npb formulation must be one of {FORMULATIONS}, got {cfg.formulation!r}")
    if cfg.kernel_fill not in KERNEL_FILLS:
        raise ConfigError(f"npb kernel_fill must be one of {KERNEL_FILLS}, got {cfg.kernel_fill!r}")
    if cfg.max_param_per_kernel is not None and cfg.max_param_per_kernel < 1:
        raise ConfigError(f"npb max_param_per_kernel must be >= 1 or None, got {cfg.max_param_per_kernel}")
    if cfg.min_param_to_node < 1 or cfg.chunk_size < 1 or cfg.linear_chunk_size < 1:
        raise ConfigError("npb min_param_to_node, chunk_size and linear_chunk_size must be >= 1")
    if not cfg.time_limit > 0:
        raise ConfigError(f"npb time_limit must be > 0 seconds, got {cfg.time_limit}")
    if not 0 <= cfg.mip_rel_gap < 1:
        raise ConfigError(f"npb mip_rel_gap must be in [0, 1) (HiGHS's default 1e-4), got {cfg.mip_rel_gap}")
    if cfg.conv_chunk_threshold < 1 or cfg.linear_chunk_threshold < 1:
        raise ConfigError("npb conv_chunk_threshold and linear_chunk_threshold must be >= 1")
