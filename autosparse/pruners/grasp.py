"""GraSP (Wang et al., ICLR 2020): keep the weights whose removal least reduces gradient flow.

Sign convention — exactly the reference code's, stated once because it is easy to flip:

* Hg is the Hessian of the pruning loss times its (stopped) gradient g, computed in two
  passes: first g = Σ_b ∇L_b with no graph, then Σ_b ∇_θ (g · ∇L_b) with a graph. Each L_b is
  the batch-mean cross-entropy of the logits divided by the temperature T = 200, weighted by
  the batch's size over the mean size (1 for equal batches; see ``pruners.gradients``).
* The original GraSP code (alecwangcq/GraSP) forms ``-θ ⊙ Hg`` and *removes* the largest of
  those values; Synaptic-Flow's ``GraSP`` forms ``θ ⊙ Hg`` and *keeps* the largest (its
  "negate to remove top percent" comment describes that equivalence; no negation is applied).
  Both keep the weights with the largest θ ⊙ Hg.
* Here scores are "higher = keep", so ``score = θ ⊙ Hg`` (signed, not an absolute value),
  divided by |Σ score| + 1e-10 as both references do. Removing weight i changes the
  gradient norm, to first order, in proportion to −θᵢ(Hg)ᵢ, so a large positive θ ⊙ Hg marks
  a weight whose removal would shrink gradient flow: those are the ones kept.

The model is in eval mode during scoring (Synaptic-Flow's default ``--prune-train-mode
False``); the original GraSP scored in train mode, available as ``train_mode=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.model_io import model_device, param_dtype
from autosparse.core.seeding import seeded
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.gradients import batch_losses, loss_gradients
from autosparse.pruners.inputs import require_data
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores, normalize_by_sum, to_scores
from autosparse.pruners.weights import named_prunable
from autosparse.pruners.workspace import working_copy


def hessian_gradient_product(
    model: nn.Module, data: PruningData, params: list[torch.Tensor], *, temperature: float
) -> list[torch.Tensor]:
    """Hg with g the stopped, batch-summed gradient — the references' two-pass product.

    One second-order graph per batch (freed before the next), so memory is that of a single
    double-backward, not of the whole pruning set.
    """
    g_stop = loss_gradients(model, data, params, temperature=temperature, reduction="sum")
    hg = [torch.zeros_like(p) for p in params]
    for loss in batch_losses(model, data, temperature=temperature):
        grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
        terms = [(gs * g).sum() for gs, g in zip(g_stop, grads) if g is not None and g.requires_grad]
        if not terms:  # the gradient does not depend on the weights: the Hessian is zero
            continue
        z = torch.stack(terms).sum()
        for acc, h in zip(hg, torch.autograd.grad(z, params, allow_unused=True)):
            if h is not None:
                acc.add_(h.detach())
    return hg


def grasp_scores(
    model: nn.Module,
    data: PruningData,
    *,
    temperature: float = 200.0,
    eps: float = 1e-10,
    train_mode: bool = False,
    normalize: bool = True,
    seed: int = 0,
) -> Scores:
    """θ ⊙ Hg (higher = keep), on a copy of ``model``; see the module docstring for the sign."""
    work = working_copy(model, train_mode=train_mode)
    if param_dtype(work) in (torch.float16, torch.bfloat16):
        # the Hessian-gradient products underflow in half precision: a float16 LeNet scored 1229 of 1232
        # weights 0 and kept the first ones by index; the scores rank the same weights in float32
        work = work.float()
    names, params = named_prunable(work)
    with seeded(seed, model_device(work)):
        hg = hessian_gradient_product(work, data, params, temperature=temperature)
    scores = to_scores(names, [p.detach() * h for p, h in zip(params, hg)])
    return normalize_by_sum(scores, absolute_sum=True, eps=eps) if normalize else scores


@dataclass
class GraspConfig(PrunerConfig):
    """Defaults of Synaptic-Flow's ``GraSP`` (temp = 200, eps = 1e-10) and ``prune_loop``."""

    scope: str = "global"  # global (one top-k over all layers, the paper's) | uniform | erk: per-layer counts
    temperature: float = 200.0  # logits / T in both passes (GraSP paper and both codes: T = 200)
    eps: float = 1e-10  # normaliser |Σ score| + eps
    train_mode: bool = False  # --prune-train-mode False: BatchNorm uses running stats
    normalize: bool = True  # divide the scores by |Σ score| + eps, as both reference codes do

    def __post_init__(self) -> None:
        if not 0 < self.temperature < math.inf:  # inf read as "all scores are equal" after the data loaded (hunt)
            raise ConfigError(f"temperature must be a finite number > 0, got {self.temperature}")
        if not self.eps >= 0:  # a negative divisor reversed the ranking in silence (helper)
            raise ConfigError(f"grasp eps must be >= 0, got {self.eps}")


@register("grasp")
class GraspPruner(ScoringPruner):
    Config = GraspConfig
    data_dependent = True
    description = "gradient-signal preservation θ·Hg, keeping the largest (Wang et al. 2020)"

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        cfg: GraspConfig = self.config  # type: ignore[assignment]
        return grasp_scores(
            model,
            require_data(data, self.name),
            temperature=cfg.temperature,
            eps=cfg.eps,
            train_mode=cfg.train_mode,
            normalize=cfg.normalize,
            seed=seed,
        )
