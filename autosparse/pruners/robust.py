"""Robust pruning at initialisation (Hayou, Ton, Doucet & Teh, ICLR 2021).

A network initialised on the Edge of Chaos (EOC) propagates signal variance unchanged through
depth; pruning most of a unit's incoming weights breaks that, so a deep sparse network's
pre-activations shrink layer after layer and it becomes untrainable however good the mask is.
The paper's fixes, implemented here around any base criterion (SNIP by default, i.e. their
"SBP" sensitivity-based pruning):

**Rescaling trick** (Prop. 2). Multiply the kept weights so that every output unit receives the
same input variance as before pruning: ``w̃_ij = ρ_i · δ_ij · w_ij`` with
``ρ_i = sqrt( Σ_j w_ij² / Σ_j δ_ij w_ij² )``. The paper writes ``ρ`` as ``1/sqrt(E[N·w²·δ])``
against the EOC variance and notes it is estimated from the kept weights; using the unit's own
dense row energy ``Σ_j w_ij²`` as the target is that estimate, makes ``ρ ≡ 1`` for an unpruned
unit, and restores the pre-activation variance exactly for inputs with independent unit
variance. For a convolution the paper's factor is per (output channel, kernel position) — the
sum runs over input channels (``granularity="paper"``); ``granularity="unit"`` uses one factor
per output channel instead. A unit or group with nothing kept is left alone.

**Stable ResNet** (SBP-SR, ``stable_resnet=True``). For residual networks the paper scales
every residual branch by ``1/sqrt(L)`` (``L`` = number of residual blocks) and prunes that
network; the scaling is part of the architecture, so it must also be present during training.
It is implemented generically by tracing the model with ``torch.fx``, finding each residual
``add`` and the module that ends its branch (the operand computed *from* the other one, or the
operand with more prunable layers when both come from a common input, as with a downsampling
shortcut), and registering a forward hook that multiplies that module's output by ``1/sqrt(L)``.
Models ``torch.fx`` cannot trace, or whose branch does not end in a module called once, raise
:class:`~autosparse.core.errors.ConfigError` with the reason.

Both changes travel with the masks as ``masks.init`` (an
:class:`~autosparse.core.init_transform.InitTransform`: the rescaling factors, computed for every
method that sets ``rescale`` by :mod:`autosparse.pruners.entry`, and the branch scales found
here), and ``masks.apply`` / the trainer perform them once, on the θ₀ that was pruned. The
rescaling itself is no longer specific to this method: any method may set ``rescale: true``.
"""

from __future__ import annotations

import logging
import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.init_transform import InitTransform, scale_branches
from autosparse.core.layers import PRUNABLE_TYPES
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, as_scoring, make_pruner, register
from autosparse.pruners.scores import Scores
from autosparse.pruners.workspace import working_copy

log = logging.getLogger(__name__)


@dataclass
class RobustConfig(PrunerConfig):
    base_method: str = "snip"  # the paper's SBP uses SNIP's sensitivity |θ g|
    base_config: dict[str, Any] = field(default_factory=dict)  # the base method's hyperparameters (its scope wins)
    rescale: bool = True  # the paper's rescaling trick (Prop. 2)
    rescale_granularity: str = "paper"  # the paper's: per (output unit, kernel position)
    rescale_normalized: bool = True  # the paper rescales every layer, BatchNorm'd or not (a faithful baseline)
    stable_resnet: bool = False  # SBP-SR: scale residual branches by 1/sqrt(L) (prune and train that network)


# --------------------------------------------------------------------------- stable ResNet


def _is_add(node: Any) -> bool:
    if node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add):
        return True
    return node.op == "call_method" and node.target in ("add", "add_")


def _ancestors(node: Any) -> set[Any]:
    seen: set[Any] = set()
    stack = list(node.all_input_nodes)
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(n.all_input_nodes)
    return seen


def residual_branch_ends(model: nn.Module) -> list[str]:
    """Names of the modules whose output is a residual branch, in forward order.

    Found by ``torch.fx`` tracing: for ``add(a, b)`` of two computed tensors, the branch is the
    operand computed from the other, or (both from a shared input, e.g. a downsampling
    shortcut) the one with more prunable layers of its own.
    """
    try:
        import torch.fx as fx

        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # tracing failures come in many exception types
        raise ConfigError(
            f"stable_resnet needs to trace {type(model).__name__} with torch.fx to find its residual branches, "
            f"which failed ({type(exc).__name__}: {exc}); use stable_resnet=False or a traceable model"
        ) from exc
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    ends: list[str] = []
    for node in graph.nodes:
        if not _is_add(node) or len(node.args) < 2:
            continue
        a, b = node.args[0], node.args[1]
        if not (isinstance(a, fx.Node) and isinstance(b, fx.Node)) or "get_attr" in (a.op, b.op):
            continue
        anc_a, anc_b = _ancestors(a), _ancestors(b)
        if a in anc_b:
            branch = b
        elif b in anc_a:
            branch = a
        else:

            def own_prunable(n: Any, other: set[Any]) -> int:
                mine = (_ancestors(n) | {n}) - other
                return sum(
                    1 for m in mine if m.op == "call_module" and isinstance(modules.get(m.target), PRUNABLE_TYPES)
                )

            ca, cb = own_prunable(a, anc_b | {b}), own_prunable(b, anc_a | {a})
            if ca == cb:
                log.warning("stable_resnet: cannot tell the branch from the shortcut at %s; left unscaled", node.name)
                continue
            branch = a if ca > cb else b
        if branch.op != "call_module":
            raise ConfigError(
                f"stable_resnet: the residual branch added at {node.name} ends in {branch.op} {branch.target!r}, "
                "not a module; end each branch with a module (e.g. its last BatchNorm or conv) or use stable_resnet=False"
            )
        if calls[branch.target] > 1:
            raise ConfigError(
                f"stable_resnet: module {branch.target!r} ends a residual branch but is called "
                f"{calls[branch.target]} times, so scaling it would scale other paths too; use stable_resnet=False"
            )
        ends.append(str(branch.target))
    return ends


def branch_scales(model: nn.Module) -> dict[str, float]:
    """SBP-SR: every residual branch of ``model`` scaled by ``1/sqrt(L)`` (module name -> scale)."""
    ends = residual_branch_ends(model)
    if not ends:
        raise ConfigError(
            f"stable_resnet: found no residual additions in {type(model).__name__}; it is not a ResNet — "
            "use stable_resnet=False"
        )
    return dict.fromkeys(ends, 1.0 / math.sqrt(len(ends)))


# --------------------------------------------------------------------------- the pruner


@register("robust")
class RobustPruner(ScoringPruner):
    Config = RobustConfig
    data_dependent = True
    description = (
        "Robust pruning at init (Hayou et al. 2021): a base criterion (SNIP) plus the EOC rescaling of kept "
        "weights and optional stable-ResNet branch scaling (both carried by the masks, applied by masks.apply)"
    )

    def __init__(self, config: PrunerConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        cfg: RobustConfig = self.config  # type: ignore[assignment]
        if cfg.base_method == self.name:
            raise ConfigError("robust cannot wrap itself; choose another base_method (e.g. snip)")
        base_cfg = dict(cfg.base_config)
        base_cfg.setdefault("scope", cfg.scope)
        self.base = make_pruner(cfg.base_method, base_cfg)
        # A data-free base (e.g. synflow) makes the wrapper data-free too.
        self.data_dependent = type(self.base).data_dependent  # type: ignore[misc]

    def _network(self, model: nn.Module) -> nn.Module:
        cfg: RobustConfig = self.config  # type: ignore[assignment]
        work = working_copy(model)
        if cfg.stable_resnet:
            scale_branches(work, branch_scales(work))
        return work

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        """The base method's scores, on the stable-ResNet network when that is enabled (a base
        that only chooses masks, e.g. npb, has none: :func:`as_scoring` says so)."""
        return as_scoring(self.base).scores(self._network(model), data, seed=seed)

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: RobustConfig = self.config  # type: ignore[assignment]
        network = self._network(model)
        base = self.base.masks(network, data, density, seed=seed)
        meta = {**base.meta, "base_method": cfg.base_method, "stable_resnet": cfg.stable_resnet}
        init = InitTransform(branch_scale=branch_scales(network)) if cfg.stable_resnet else None
        return Masks(base.to_dict(), meta=meta, init=init)
