"""NPB's integer program for one layer (or one chunk of a layer's output units).

Separate from :mod:`autosparse.pruners.npb`, which walks the network and decides each layer's
budget and path counts: the program itself is pure numpy/scipy, knows nothing of models, and is
tested on its own against brute force. See that module's docstring for the objective and for
the deliberate differences from the reference code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array, vstack

from autosparse.core.errors import ConfigError

log = logging.getLogger(__name__)

PATH_NORMS = ("bound", "reference")


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
