"""SynFlow (Tanaka et al., NeurIPS 2020): iterative synaptic-flow conservation, no data.

Score: make the network linear and positive (``abs`` of every parameter and buffer), feed a
single all-ones input, let R be the sum of the outputs, and score each weight by
|θ ⊙ ∂R/∂θ| — the total "flow" of positive signal through it, a path-count that is
conserved layer by layer, so no layer's total score can collapse relative to the others.
Pruning in many rounds on an exponential schedule, re-scoring the thinned network each time,
is what keeps that balance at extreme sparsity (one-shot SynFlow can still empty a layer).

Following Synaptic-Flow's ``SynFlow`` and ``prune_loop``: 100 rounds, exponential schedule,
global masking, the model in eval mode (BatchNorm uses its |running| statistics; a
single all-ones input has no meaningful batch statistics). Unlike the reference, which
leaves ``model.double()`` commented out, scoring is in float64 on a copy by default: path
products over a deep network overflow or underflow float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from autosparse.core.layers import bake_parametrizations
from autosparse.core.masks import Masks
from autosparse.core.model_io import logits, model_device
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.inputs import input_shape_of
from autosparse.pruners.iterate import Thinning, check_schedule, iterate, schedule_densities
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores, to_scores
from autosparse.pruners.weights import named_prunable
from autosparse.pruners.workspace import working_copy
from autosparse.training.irp import register_round_step


def positive_copy(model: nn.Module, *, float64: bool = True) -> nn.Module:
    """SynFlow's linearised network: an eval-mode copy of ``model`` (float64 by default) with every
    floating parameter and buffer replaced by its absolute value.

    As Synaptic-Flow's reference takes ``abs`` of the whole ``state_dict`` (weights, biases,
    BatchNorm affine parameters and running statistics), this turns the network into a positive,
    linear map of an all-ones input. Made once per pruning call: the rounds zero pruned weights
    of this same copy, and ``|0| = 0``, so it equals linearising each round's thinned network.
    """
    work = working_copy(model, train_mode=False, dtype=torch.float64 if float64 else None)
    # a tensor a parametrization computes (left dense) is taken as its value: |·| of its stored parts
    # is not |value| for every map (a Householder-orthogonal weight rebuilt from |original| kept
    # negative entries and zeroed the whole flow behind its ReLU)
    bake_parametrizations(work, keep_as="buffer")
    with torch.no_grad():
        for t in work.state_dict(keep_vars=True).values():
            if t.is_floating_point():
                t.abs_()
    return work


def flow_scores(positive: nn.Module, input_shape: Sequence[int]) -> Scores:
    """|θ ⊙ ∂R/∂θ| of a network already made positive by :func:`positive_copy` (no copy here).

    R is the sum of the outputs for one all-ones input in the network's own precision.
    """
    names, params = named_prunable(positive)
    shape = (1, *tuple(int(d) for d in input_shape))
    scores: list[torch.Tensor] = []
    for log2 in _INPUT_LOG2_SCALES:
        # an all-ones input first (the reference); if the flow overflows — a model that casts to float32
        # inside (timm's EfficientViT attention: q.float()) — a smaller one: the flow is linear in the
        # input but for the biases, so the ranking is kept where the ones overflowed to inf/NaN
        x = torch.full(shape, 2.0**log2, dtype=params[0].dtype, device=model_device(positive))
        total = logits(positive(x)).sum()
        if not torch.isfinite(total):
            continue
        grads = torch.autograd.grad(total, params, allow_unused=True)
        scores = [(p.detach() * g).abs_() if g is not None else torch.zeros_like(p) for p, g in zip(params, grads)]
        if all(bool(torch.isfinite(s.sum())) for s in scores):
            break
    else:
        if not scores:  # every scale overflowed: NaN scores, which the selection names
            scores = [torch.full_like(p, float("nan")) for p in params]
    return to_scores(names, scores)


#: log2 of the all-ones input's scale, tried in turn while the flow is not finite
_INPUT_LOG2_SCALES = (0, -32, -64, -96, -128)


def synflow_scores(model: nn.Module, input_shape: Sequence[int], *, float64: bool = True) -> Scores:
    """One-shot SynFlow scores |θ ⊙ ∂R/∂θ| of ``model`` (computed on a copy; eval mode)."""
    return flow_scores(positive_copy(model, float64=float64), input_shape)


#: SynFlow's iterations from dense to the final density (Tanaka et al.'s 100): one IRP round with the
#: ``flow`` criterion runs those that fall inside it, so a whole run re-scores as often as one SynFlow call
FLOW_ROUNDS = 100


def thin_by_flow(
    net: nn.Module, masks: dict[str, torch.Tensor], keep: int, final_density: float, input_shape: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """IRP's ``flow`` criterion: the ``keep`` survivors of ``masks`` in the trained ``net`` by SynFlow's
    path flow of |θ_trained|, re-scored after each of SynFlow's sub-steps inside the round.

    Why: IMP's magnitude keeps the largest trained weights, which on deep plain conv nets need not
    chain into paths — its masks collapse below ~1% density, and at 0.78% its within-layer choice
    trains 6 points below SynFlow's even under SynFlow's own counts; SynFlow at θ0 chains but has not
    seen training. Scoring the trained network by its flow does both (docs/SCORER.md, "A teacher
    above SynFlow")."""
    total = sum(m.numel() for m in masks.values())
    alive = sum(int(m.sum()) for m in masks.values())
    between = [d for d in schedule_densities(final_density, FLOW_ROUNDS) if keep < d * total < alive]
    work = positive_copy(net)
    state = Thinning(work)
    state.keep_allocated(Masks({n: masks[n] for n in state.names}))  # start from the round's survivors
    for count in [*(int(round(d * total)) for d in between), keep]:
        scores = flow_scores(work, input_shape)
        state.restore_state()
        state.keep_global(scores, count)
    return {n: m.to(torch.bool).cpu() for n, m in state.current().items()}


register_round_step("flow", thin_by_flow)


@dataclass
class SynflowConfig(PrunerConfig):
    """Defaults of Tanaka et al. 2020 (§6/§7: 100 iterations, exponential schedule) and
    Synaptic-Flow's ``main.py`` (``--compression-schedule exponential``, ``--mask-scope global``)."""

    scope: str = "global"
    rounds: int = 100  # pruning rounds, each re-scoring what is left (the paper's 100)
    schedule: str = "exp"  # "exp": d_r = d^(r/R); "linear"
    input_shape: tuple[int, ...] | None = None  # per-sample input shape; else taken from data or model.input_shape
    float64: bool = True  # score in float64: deep nets' path products under- or overflow float32

    def __post_init__(self) -> None:
        check_schedule(self.rounds, self.schedule)
        if self.input_shape is not None:
            self.input_shape = tuple(int(d) for d in self.input_shape)


@register("synflow")
class SynflowPruner(ScoringPruner):
    own_inputs = True
    Config = SynflowConfig
    data_dependent = False
    description = "iterative synaptic flow |θ·∂R/∂θ| with an all-ones input, no data (Tanaka et al. 2020)"

    def _shape(self, model: nn.Module, data: PruningData | None) -> tuple[int, ...]:
        cfg: SynflowConfig = self.config  # type: ignore[assignment]
        return input_shape_of(self.name, cfg.input_shape, PruningData.coerce(data), model)

    def scores(self, model: nn.Module, data: PruningData | None = None, *, seed: int = 0) -> Scores:
        """One-shot scores (what the feature extractor records); :meth:`masks` iterates."""
        cfg: SynflowConfig = self.config  # type: ignore[assignment]
        return synflow_scores(model, self._shape(model, data), float64=cfg.float64)

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: SynflowConfig = self.config  # type: ignore[assignment]
        shape = self._shape(model, data)
        return iterate(
            lambda positive, _masks: flow_scores(positive, shape),
            model,
            density,
            cfg.rounds,
            schedule=cfg.schedule,  # type: ignore[arg-type]
            scope=cfg.scope,  # type: ignore[arg-type]
            desc="synflow rounds",
            prepare=lambda m: positive_copy(m, float64=cfg.float64),
        )
