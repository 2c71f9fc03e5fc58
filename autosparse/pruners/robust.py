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

A mask cannot carry a weight change, so the masks this pruner returns say what to do in their
``meta``: ``rescale`` (bool), ``rescale_granularity``, ``stable_resnet`` (bool) and
``prepare = "autosparse.pruners.robust.prepare_for_training"``. Training code calls
:func:`prepare_for_training` once, on the freshly initialised weights θ₀ that were pruned,
before the first optimiser step (before or after ``masks.apply`` — both work).
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.layers import PRUNABLE_TYPES, prunable_layers
from autosparse.core.masks import Masks
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, as_scoring, make_pruner, register
from autosparse.pruners.scores import Scores
from autosparse.pruners.workspace import working_copy

log = logging.getLogger(__name__)

GRANULARITIES = ("paper", "unit")
PREPARE = "autosparse.pruners.robust.prepare_for_training"
_SCALE_ATTR = "_autosparse_branch_scale"


@dataclass
class RobustConfig(PrunerConfig):
    base_method: str = "snip"  # the paper's SBP uses SNIP's sensitivity |θ g|
    base_config: dict[str, Any] = field(default_factory=dict)  # hyperparameters of the base method
    rescale: bool = True  # the paper's rescaling trick (Prop. 2)
    rescale_granularity: str = "paper"  # paper: per (out channel, kernel position) in convs | unit: per out channel
    stable_resnet: bool = False  # SBP-SR: scale residual branches by 1/sqrt(L) (prune and train that network)


# --------------------------------------------------------------------------- rescaling trick


def rescale_weights(
    model: nn.Module, masks: Mapping[str, torch.Tensor], granularity: str = "paper"
) -> dict[str, torch.Tensor]:
    """The factor each prunable weight must be multiplied by (weight-shaped tensors, 1 where pruned).

    Computed from the model's current (dense, θ₀) weights; pure — the model is not changed.
    """
    if granularity not in GRANULARITIES:
        raise ConfigError(f"unknown rescale_granularity {granularity!r}; use one of {', '.join(GRANULARITIES)}")
    factors: dict[str, torch.Tensor] = {}
    for layer in prunable_layers(model):
        w = layer.parameter.detach()
        keep = masks[layer.name].to(device=w.device, dtype=torch.bool)
        if tuple(keep.shape) != tuple(w.shape):
            raise ConfigError(f"mask {layer.name} has shape {tuple(keep.shape)}, the weight {tuple(w.shape)}")
        w64 = w.to(torch.float64)
        if bool((~keep).any()) and bool((w64[~keep] == 0).all()) and bool((w64 != 0).any()):
            raise ConfigError(
                f"every pruned weight of {layer.name} is already zero, so the dense variance to restore is lost; "
                "call the rescaling on θ₀ before the masks are baked in (before remove_masks or training)"
            )
        sq = w64.pow(2)
        # Sum over what feeds one unit: input channels (and, for 'unit', the kernel positions too).
        dims = (1,) if granularity == "paper" else tuple(range(1, w.dim()))
        dense = sq.sum(dim=dims, keepdim=True)
        kept = (sq * keep).sum(dim=dims, keepdim=True)
        rho = torch.where(kept > 0, torch.sqrt(dense / kept.clamp_min(torch.finfo(torch.float64).tiny)), 1.0)
        factors[layer.name] = torch.where(keep, rho.expand_as(w64), torch.ones_like(w64)).to(w.dtype)
    return factors


def apply_rescale(
    model: nn.Module, masks: Mapping[str, torch.Tensor], granularity: str = "paper"
) -> dict[str, torch.Tensor]:
    """Multiply ``model``'s kept weights in place by :func:`rescale_weights`; return the factors.

    Call exactly once, on θ₀: the factors depend on the dense weights, so calling it again (or
    after training) would rescale already-rescaled weights.
    """
    factors = rescale_weights(model, masks, granularity)
    with torch.no_grad():
        for layer in prunable_layers(model):
            layer.parameter.mul_(factors[layer.name].to(layer.parameter.device))
    return factors


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


def _scale_output(module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return output * getattr(module, _SCALE_ATTR)


def apply_stable_resnet(model: nn.Module) -> list[str]:
    """Scale every residual branch of ``model`` by ``1/sqrt(L)`` with forward hooks (idempotent).

    Returns the branch-end module names. Hooks survive ``copy.deepcopy`` and pickling (the hook
    is a module-level function reading the scale from a module attribute); they are not part of
    ``state_dict``, so a model rebuilt from a state dict must be prepared again.
    """
    ends = residual_branch_ends(model)
    if not ends:
        raise ConfigError(
            f"stable_resnet: found no residual additions in {type(model).__name__}; it is not a ResNet — "
            "use stable_resnet=False"
        )
    scale = 1.0 / math.sqrt(len(ends))
    modules = dict(model.named_modules())
    for name in ends:
        module = modules[name]
        if hasattr(module, _SCALE_ATTR):
            continue
        setattr(module, _SCALE_ATTR, scale)
        module.register_forward_hook(_scale_output)
    return ends


def prepare_for_training(model: nn.Module, masks: Masks) -> nn.Module:
    """Make ``model`` the network that ``masks`` were chosen for: what training must call.

    Reads ``masks.meta``: adds the stable-ResNet branch scaling if ``stable_resnet`` and
    multiplies the kept weights by the rescaling factors if ``rescale``. A no-op for masks of
    other methods, so training code may call it unconditionally. Call once, on θ₀.
    """
    meta = masks.meta
    if meta.get("stable_resnet"):
        apply_stable_resnet(model)
    if meta.get("rescale"):
        apply_rescale(model, masks, str(meta.get("rescale_granularity", "paper")))
    return model


# --------------------------------------------------------------------------- the pruner


@register("robust")
class RobustPruner(ScoringPruner):
    Config = RobustConfig
    data_dependent = True
    description = (
        "Robust pruning at init (Hayou et al. 2021): a base criterion (SNIP) plus the EOC rescaling of kept "
        "weights and optional stable-ResNet branch scaling; training must call robust.prepare_for_training"
    )

    def __init__(self, config: PrunerConfig | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        cfg: RobustConfig = self.config  # type: ignore[assignment]
        if cfg.rescale_granularity not in GRANULARITIES:
            raise ConfigError(
                f"unknown rescale_granularity {cfg.rescale_granularity!r}; use one of {', '.join(GRANULARITIES)}"
            )
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
            apply_stable_resnet(work)
        return work

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        """The base method's scores, on the stable-ResNet network when that is enabled (a base
        that only chooses masks, e.g. npb, has none: :func:`as_scoring` says so)."""
        return as_scoring(self.base).scores(self._network(model), data, seed=seed)

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: RobustConfig = self.config  # type: ignore[assignment]
        base = self.base.masks(self._network(model), data, density, seed=seed)
        meta = {
            **base.meta,
            "base_method": cfg.base_method,
            "rescale": cfg.rescale,
            "rescale_granularity": cfg.rescale_granularity,
            "stable_resnet": cfg.stable_resnet,
            "prepare": PREPARE,
        }
        return Masks(base.to_dict(), meta=meta)
