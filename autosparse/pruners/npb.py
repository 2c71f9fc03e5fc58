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
  integer per kernel, is used otherwise and via ``solve_layer(..., formulation="full")``;
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
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array, vstack
from torch import nn
from tqdm.auto import tqdm

from autosparse.core.allocation import erk_counts, uniform_counts
from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.inputs import input_shape_of
from autosparse.pruners.registry import Pruner, PrunerConfig, register
from autosparse.topology.paths import PathNetwork, stats_from_flow

log = logging.getLogger(__name__)

PATH_NORMS = ("bound", "reference")
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
    reassign_ineffective: bool = True
    input_shape: tuple[int, ...] | None = None  # needed when no data is passed


@dataclass
class LayerSolution:
    """One integer program's answer: counts[i, o] = weights kept between input i and output o."""

    counts: np.ndarray
    objective: float
    status: str


def _as_matrix(p_in: np.ndarray, c_out: int) -> np.ndarray:
    p = np.asarray(p_in, dtype=np.float64)
    if p.ndim == 1:
        p = np.repeat(p[:, None], c_out, axis=1)
    if p.ndim != 2 or p.shape[1] != c_out:
        raise ValueError(f"p_in must be (C_in,) or (C_in, {c_out}); got {p.shape}")
    return p


def max_path(p_in: np.ndarray, c_out: int, budget: int, max_per_kernel: int = 1, path_norm: str = "bound") -> float:
    """The path term's normaliser.

    ``bound``: the largest ``Σ P_io M_io`` the budget allows (fill the highest-``P`` entries up
    to ``max_per_kernel`` each). ``reference``: the reference code's arithmetic, including its
    whole-array slice when ``budget < c_out · max_per_kernel``.
    """
    k = int(max_per_kernel)
    if path_norm == "bound":
        flat = np.sort(_as_matrix(p_in, c_out).reshape(-1))[::-1]
        full, rest = divmod(int(budget), k)
        total = k * float(flat[:full].sum())
        if rest and full < flat.size:
            total += rest * float(flat[full])
        return total
    if path_norm == "reference":
        p = np.asarray(p_in, dtype=np.float64)
        p = p.mean(axis=1) if p.ndim == 2 else p
        ps = np.sort(p)
        m = int(budget) // (c_out * k)
        rest = int(budget) - m * c_out * k
        top = ps[-m:] if m > 0 else ps  # the reference's ``ps[-0:]`` is the whole array
        total = float(top.sum()) * c_out * k
        if m + 1 <= ps.size:
            total += rest * float(ps[-(m + 1)])
        return total
    raise ConfigError(f"path_norm must be one of {PATH_NORMS}, got {path_norm!r}")


def npb_objective(
    counts: np.ndarray,
    p_in: np.ndarray,
    budget: int,
    *,
    alpha: float,
    beta: float = 0.0,
    max_per_kernel: int = 1,
    min_per_node: int = 1,
    path_norm: str = "bound",
) -> float:
    """The reference's per-layer objective ``α·A + (1−α)·B + β·Reg`` for a count matrix
    ``counts`` of shape (C_in, C_out)."""
    m = np.asarray(counts, dtype=np.float64)
    c_in, c_out = m.shape
    p = _as_matrix(p_in, c_out)
    s_in, s_out = m.sum(axis=1), m.sum(axis=0)
    dead = np.maximum(0.0, min_per_node - s_in).sum() + np.maximum(0.0, min_per_node - s_out).sum()
    nodes = (c_in + c_out - dead) / (c_in + c_out)
    norm = max_path(p, c_out, budget, max_per_kernel, path_norm)
    paths = float((p * m).sum()) / norm if norm > 0 else 0.0
    reg = (budget - np.maximum(0.0, 1.0 - m).sum()) / budget if budget > 0 else 0.0
    return float(alpha * nodes + (1.0 - alpha) * paths + beta * reg)


def _greedy(p: np.ndarray, budget: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Fallback when the solver finds nothing in time: one element per entry in order of P
    (ties random), then a second round, ... — spreads the budget over many kernels."""
    flat = p.reshape(-1)
    order = np.lexsort((rng.permutation(flat.size), -flat))
    counts = np.zeros(flat.size, dtype=np.int64)
    left = int(budget)
    for _ in range(k):
        take = order[: min(left, order.size)]
        counts[take] += 1
        left -= take.size
        if left <= 0:
            break
    return counts.reshape(p.shape)


FORMULATIONS = ("auto", "full", "aggregated")


def _run_milp(
    c: np.ndarray,
    a: object,
    lb: np.ndarray,
    ub: np.ndarray,
    upper: np.ndarray,
    integrality: np.ndarray,
    time_limit: float,
    mip_rel_gap: float,
):
    # presolve off: HiGHS's presolve cannot reduce these highly symmetric programs and, measured
    # on LeNet-300-100's layers, costs several times more than the branch-and-bound itself
    return milp(
        c,
        constraints=LinearConstraint(a, lb, ub),
        integrality=integrality,
        bounds=Bounds(np.zeros(c.size), upper),
        options={
            "time_limit": float(time_limit),
            "mip_rel_gap": float(mip_rel_gap),
            "disp": False,
            "presolve": False,
        },
    )


def _full_program(
    pp: np.ndarray, budget: int, k: int, alpha: float, beta: float, min_n: int, norm: float
) -> tuple[np.ndarray, object, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """One integer variable per (input, output) pair: the reference's formulation, as a MILP.

    ``max(0, min_n − Σ M)`` per unit and ``max(0, 1 − M)`` per kernel become continuous slack
    variables bounded below by their argument; maximising minus the slack makes them tight.
    """
    c_in, c_out = pp.shape
    n = c_in * c_out
    use_v = beta != 0.0 and k > 1  # with 0/1 entries Reg is a constant under the exact budget
    n_var = n + c_in + c_out + (n if use_v else 0)
    c = np.zeros(n_var)
    if norm > 0:
        c[:n] = -(1.0 - alpha) * pp.reshape(-1) / norm
    c[n : n + c_in + c_out] = alpha / (c_in + c_out)
    if use_v:
        c[n + c_in + c_out :] = beta / max(budget, 1)
    e = np.arange(n)
    i_of, o_of = e // c_out, e % c_out
    blocks = [coo_array((np.ones(n), (np.zeros(n, dtype=np.int64), e)), shape=(1, n_var))]
    rows, cols = np.concatenate([i_of, np.arange(c_in)]), np.concatenate([e, n + np.arange(c_in)])
    blocks.append(coo_array((np.ones(rows.size), (rows, cols)), shape=(c_in, n_var)))
    rows, cols = np.concatenate([o_of, np.arange(c_out)]), np.concatenate([e, n + c_in + np.arange(c_out)])
    blocks.append(coo_array((np.ones(rows.size), (rows, cols)), shape=(c_out, n_var)))
    lb = [float(budget)] + [float(min_n)] * (c_in + c_out)
    ub = [float(budget)] + [np.inf] * (c_in + c_out)
    if use_v:
        rows, cols = np.concatenate([e, e]), np.concatenate([e, n + c_in + c_out + e])
        blocks.append(coo_array((np.ones(rows.size), (rows, cols)), shape=(n, n_var)))
        lb += [1.0] * n
        ub += [np.inf] * n
    upper = np.concatenate([np.full(n, float(k)), np.full(c_in + c_out, float(min_n)), np.ones(n if use_v else 0)])
    integrality = np.concatenate([np.ones(n), np.zeros(n_var - n)])
    return c, vstack(blocks).tocsr(), np.array(lb), np.array(ub), upper, integrality, n


def _aggregated_program(
    p: np.ndarray, c_out: int, budget: int, k: int, alpha: float, beta: float, norm: float
) -> tuple[np.ndarray, object, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The same optimum with O(C_in) variables, valid when P depends on the input unit only
    and a unit needs one connection to count (the reference's defaults).

    Per input ``i``: ``t_i`` kept elements, ``k_i`` distinct kernels (``k_i ≤ t_i ≤ K·k_i``),
    ``z_i ≤ k_i`` (input unit covered); one ``y ≤ Σ k_i`` (output units covered). Every full
    solution maps onto these with the same objective, and every aggregated one is realised with
    ``y = min(C_out, Σ k_i)`` by assigning each input's kernels cyclically over the outputs, so
    both programs have the same optimum. Variables: [t (C_in), k (C_in), z (C_in), y].
    """
    c_in = p.size
    c = np.zeros(3 * c_in + 1)
    if norm > 0:
        c[:c_in] = -(1.0 - alpha) * p / norm
    if beta != 0.0:
        c[c_in : 2 * c_in] = -beta / max(budget, 1)
    c[2 * c_in :] = -alpha / (c_in + c_out)
    idx = np.arange(c_in)
    rows = [np.zeros(c_in, dtype=np.int64)]  # Σ t = budget
    cols, vals = [idx], [np.ones(c_in)]
    rows += [1 + idx, 1 + idx]  # k_i - t_i <= 0
    cols += [c_in + idx, idx]
    vals += [np.ones(c_in), -np.ones(c_in)]
    rows += [1 + c_in + idx, 1 + c_in + idx]  # t_i - K k_i <= 0
    cols += [idx, c_in + idx]
    vals += [np.ones(c_in), -float(k) * np.ones(c_in)]
    rows += [1 + 2 * c_in + idx, 1 + 2 * c_in + idx]  # z_i - k_i <= 0
    cols += [2 * c_in + idx, c_in + idx]
    vals += [np.ones(c_in), -np.ones(c_in)]
    last = 1 + 3 * c_in  # y - Σ k <= 0
    rows += [np.array([last]), np.full(c_in, last)]
    cols += [np.array([3 * c_in]), c_in + idx]
    vals += [np.ones(1), -np.ones(c_in)]
    a = coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(last + 1, 3 * c_in + 1)
    ).tocsr()
    lb = np.concatenate([[float(budget)], np.full(3 * c_in + 1, -np.inf)])
    ub = np.concatenate([[float(budget)], np.zeros(3 * c_in + 1)])
    upper = np.concatenate(
        [np.full(c_in, float(k * c_out)), np.full(c_in, float(c_out)), np.ones(c_in), [float(c_out)]]
    )
    integrality = np.concatenate([np.ones(2 * c_in), np.zeros(c_in + 1)])
    return c, a, lb, ub, upper, integrality


def _disaggregate(t: np.ndarray, kern: np.ndarray, c_out: int) -> np.ndarray:
    """Counts matrix from per-input totals: input ``i`` spreads ``t_i`` elements as evenly as
    possible over ``k_i`` consecutive outputs (cyclically), so the outputs covered are
    ``min(C_out, Σ k_i)`` and no kernel exceeds ``ceil(t_i / k_i) <= K``."""
    counts = np.zeros((t.size, c_out), dtype=np.int64)
    start = 0
    for i in range(t.size):
        ki, ti = int(kern[i]), int(t[i])
        if ki == 0:
            continue
        base, extra = divmod(ti, ki)
        outs = (start + np.arange(ki)) % c_out
        counts[i, outs] = base
        counts[i, outs[:extra]] += 1
        start = (start + ki) % c_out
    return counts


def solve_layer(
    p_in: np.ndarray,
    c_out: int,
    budget: int,
    *,
    alpha: float,
    beta: float = 0.0,
    max_per_kernel: int = 1,
    min_per_node: int = 1,
    path_norm: str = "bound",
    time_limit: float = 30.0,
    mip_rel_gap: float = 1e-4,
    rng: np.random.Generator | None = None,
    formulation: str = "auto",
) -> LayerSolution:
    """Maximise :func:`npb_objective` over integer counts with ``Σ counts = budget`` exactly.

    ``formulation``: ``full`` is the reference's one-variable-per-kernel program; ``aggregated``
    the equivalent per-input program (see :func:`_aggregated_program`), orders of magnitude
    faster; ``auto`` takes the aggregated one whenever it is exact. ``rng`` shuffles units
    before the solve, so ties between equally good solutions are broken by the seed rather
    than by the solver's preference for low indices; ``None`` solves in the given order.
    """
    if formulation not in FORMULATIONS:
        raise ConfigError(f"formulation must be one of {FORMULATIONS}, got {formulation!r}")
    p = _as_matrix(p_in, c_out)
    c_in = p.shape[0]
    k = int(max_per_kernel)
    budget = int(budget)
    if not 0 <= budget <= c_in * c_out * k:
        raise ConfigError(f"cannot keep {budget} weights in a {c_in}x{c_out} layer with at most {k} per kernel")
    separable = bool(np.all(p == p[:, :1])) and int(min_per_node) == 1
    if formulation == "aggregated" and not separable:
        raise ConfigError("the aggregated NPB program needs per-input P and min_per_node=1; use formulation='full'")
    aggregated = formulation == "aggregated" or (formulation == "auto" and separable)
    perm_in = rng.permutation(c_in) if rng is not None else np.arange(c_in)
    perm_out = rng.permutation(c_out) if rng is not None else np.arange(c_out)
    pp = p[np.ix_(perm_in, perm_out)]
    norm = max_path(pp, c_out, budget, k, path_norm)
    if aggregated:
        c, a, lb, ub, upper, integrality = _aggregated_program(pp[:, 0], c_out, budget, k, alpha, beta, norm)
    else:
        c, a, lb, ub, upper, integrality, n = _full_program(pp, budget, k, alpha, beta, int(min_per_node), norm)
    res = _run_milp(c, a, lb, ub, upper, integrality, time_limit, mip_rel_gap)
    counts_p: np.ndarray | None = None
    status = "optimal" if res.status == 0 else "time_limit"
    if res.x is not None:
        x = np.rint(res.x).astype(np.int64)
        if aggregated:
            counts_p = _disaggregate(x[:c_in], x[c_in : 2 * c_in], c_out)
        else:
            counts_p = x[:n].clip(0, k).reshape(c_in, c_out)
        if int(counts_p.sum()) != budget or int(counts_p.max(initial=0)) > k:
            counts_p = None  # integrality tolerance; never seen, but the count must stay exact
    if counts_p is None:
        log.warning("HiGHS found no usable solution in %.1f s (%s); using a greedy fill", time_limit, res.message)
        counts_p = _greedy(pp, budget, k, rng or np.random.default_rng(0))
        status = "fallback"
    counts = np.zeros_like(counts_p)
    counts[np.ix_(perm_in, perm_out)] = counts_p
    obj = npb_objective(
        counts, p, budget, alpha=alpha, beta=beta, max_per_kernel=k, min_per_node=min_per_node, path_norm=path_norm
    )
    return LayerSolution(counts, obj, status)


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
        rng = np.random.default_rng(int(seed))
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
    if cfg.beta < 0:
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
    if cfg.time_limit <= 0:
        raise ConfigError(f"npb time_limit must be > 0 seconds, got {cfg.time_limit}")
