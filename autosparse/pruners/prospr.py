"""ProsPr — Prospect Pruning (Alizadeh et al., ICLR 2022).

SNIP asks "how much does the loss change if this weight is removed *now*"; but a mask is
chosen to be trained, so ProsPr asks how removing a weight changes the loss *after a few steps
of training*. Each prunable weight gets a multiplicative mask variable ``c = 1``; the masked
network ``θ ⊙ c`` takes ``M`` differentiable SGD steps on pruning batches, the loss after those
steps is measured on the next batch, and the saliency is ``|∂L_M / ∂c|`` — a meta-gradient
through the inner loop (full second order), or its first-order approximation in which the
inner gradients are treated as constants (then the score is ``|θ ⊙ ∇L(θ_M)|``). With ``M = 0``
it is exactly SNIP's ``|θ ⊙ g|``.

Defaults follow the reference code (github.com/mil-ad/prospr): 3 inner steps, inner learning
rate 0.1 and momentum 0 (``cli.py``), full meta-gradients, a fresh batch per inner step
(``prospr.prune``'s ``new_data_in_inner=True``), one shot with a global top-k. The reference
prunes in one shot; ``rounds > 1`` re-scores the thinned network through
:func:`autosparse.pruners.iterate.iterate` (exponential schedule) for users who want it.

Two deliberate differences from the reference, both for correctness of the full meta-gradient:
the first momentum buffer keeps its graph (the reference detaches it, silently dropping one
second-order term when momentum > 0), and parameters that are not trainable in the caller's
model are held constant instead of being updated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.masks import Masks
from autosparse.core.model_io import call_with, class_targets, logits, model_device, model_input, param_dtype
from autosparse.core.seeding import seeded
from autosparse.data.pruning_data import Batch, PruningData
from autosparse.pruners.inputs import require_data
from autosparse.pruners.iterate import check_schedule, iterate
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores
from autosparse.pruners.weights import param_keys
from autosparse.pruners.workspace import working_copy


@dataclass
class ProsPrConfig(PrunerConfig):
    inner_steps: int = 3  # M; reference cli.py --inner-steps default 3
    inner_lr: float = 0.1  # reference cli.py --inner-lr default 0.1 (its README example uses 0.5)
    inner_momentum: float = 0.0  # reference cli.py --inner-momentum default 0 (README example 0.9)
    first_order: bool = False  # reference --meta-grads-mode default "full"
    new_data_in_inner: bool = True  # reference prospr.prune(new_data_in_inner=True); cycles the batches given
    meta_batch_size: int | None = None  # re-split the pruning data into batches of this size (reference: 128)
    rounds: int = 1  # reference prunes in one shot; > 1 re-scores the thinned net (iterate)
    schedule: str = "exp"  # density schedule across rounds when rounds > 1

    def __post_init__(self) -> None:
        """Checked where the config is made: rounds=0 and an unknown schedule passed in silence, and a
        NaN inner_lr surfaced as "all scores are NaN … check the model's initialization" (helper)."""
        check_schedule(self.rounds, self.schedule)
        if not 0 < self.inner_lr < math.inf:  # inf: "all scores are NaN" after the data loaded (hunt)
            raise ConfigError(f"prospr inner_lr must be a finite number > 0, got {self.inner_lr}")
        if not 0 <= self.inner_momentum < 1:
            raise ConfigError(f"prospr inner_momentum must be in [0, 1), got {self.inner_momentum}")


def _split(batches: list[Batch], size: int | None) -> list[Batch]:
    """Re-batch the pruning data so the inner loop sees ``size``-sample steps as in the reference."""
    if size is None:
        return batches
    if size < 1:
        raise ConfigError(f"meta_batch_size must be >= 1, got {size}")
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def meta_gradient_scores(
    model: nn.Module,
    batches: list[Batch],
    *,
    inner_steps: int,
    inner_lr: float,
    inner_momentum: float = 0.0,
    first_order: bool = False,
    new_data_in_inner: bool = True,
) -> Scores:
    """``|∂ L(θ_M) / ∂c|`` at ``c = 1`` for every prunable weight of ``model`` (modified freely: pass a copy).

    The model runs in train mode (as in the reference: batch-norm uses batch statistics during
    the inner steps). Pruned weights that are already zero get a zero score, because
    ``∂L/∂c = θ ⊙ (…)`` vanishes with ``θ``.
    """
    if inner_steps < 0:
        raise ConfigError(f"inner_steps must be >= 0, got {inner_steps}")
    if not batches:
        raise ConfigError("ProsPr needs at least one (inputs, targets) batch")
    model.train()
    keys = param_keys(model)
    key_to_layer = {k: n for n, k in keys.items()}
    named = dict(model.named_parameters())
    cvars = {n: torch.ones_like(named[k], requires_grad=True) for n, k in keys.items()}
    trainable = [k for k, p in named.items() if p.requires_grad or k in key_to_layer]

    fast: dict[str, torch.Tensor] = {}
    for k, p in named.items():
        base = p.detach()
        if k in key_to_layer:
            fast[k] = base * cvars[key_to_layer[k]]
        elif k in trainable:
            fast[k] = base.clone().requires_grad_(True)
        else:
            fast[k] = base
    device, dtype = model_device(model), param_dtype(model)

    def batch(i: int) -> Batch:
        x, y = batches[i % len(batches)] if new_data_in_inner else batches[0]
        return model_input(x, device, dtype), y.to(device)  # the model's dtype, as every other method feeds it

    momentum_buf: dict[str, torch.Tensor] = {}
    for step in range(inner_steps):
        x, y = batch(step)
        out = logits(call_with(model, fast, (x,)))
        loss = F.cross_entropy(out, class_targets(out, y))
        grads = torch.autograd.grad(loss, [fast[k] for k in trainable], create_graph=not first_order, allow_unused=True)
        new_fast = dict(fast)
        for k, g in zip(trainable, grads, strict=True):
            if g is None:  # a parameter the forward never uses stays where it is
                continue
            if inner_momentum:
                g = g if k not in momentum_buf else momentum_buf[k] * inner_momentum + g
                momentum_buf[k] = g
            new_fast[k] = fast[k] - inner_lr * g
        fast = new_fast

    x, y = batch(inner_steps)
    out = logits(call_with(model, fast, (x,)))
    meta_loss = F.cross_entropy(out, class_targets(out, y))
    names = list(cvars)
    meta_grads = torch.autograd.grad(meta_loss, [cvars[n] for n in names], allow_unused=True)
    return {
        n: (g.detach().abs() if g is not None else torch.zeros_like(cvars[n]))
        for n, g in zip(names, meta_grads, strict=True)
    }


@register("prospr")
class ProsPr(ScoringPruner):
    Config = ProsPrConfig
    data_dependent = True
    description = (
        "ProsPr (Alizadeh et al. 2022): |meta-gradient| of the loss after a few SGD steps w.r.t. a "
        "multiplicative mask on each weight"
    )

    def _score(self, model: nn.Module, data: PruningData) -> Scores:
        cfg: ProsPrConfig = self.config  # type: ignore[assignment]
        return meta_gradient_scores(
            model,
            _split(list(data.batches), cfg.meta_batch_size),
            inner_steps=cfg.inner_steps,
            inner_lr=cfg.inner_lr,
            inner_momentum=cfg.inner_momentum,
            first_order=cfg.first_order,
            new_data_in_inner=cfg.new_data_in_inner,
        )

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        with seeded(seed, model_device(model)):  # dropout in train mode must not make the score depend on global state
            return self._score(working_copy(model), require_data(data, self.name))

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: ProsPrConfig = self.config  # type: ignore[assignment]
        if cfg.rounds <= 1:
            return super().masks(model, data, density, seed=seed)
        pdata = require_data(data, self.name)

        def score_fn(m: nn.Module, _masks: Masks | None) -> Scores:
            # ``iterate`` hands its private copy with pruned weights zeroed and restores the
            # batch-norm statistics the inner steps change, so no round leaks into the next.
            return self._score(m, pdata)

        with seeded(seed, model_device(model)):
            return iterate(
                score_fn,
                model,
                density,
                cfg.rounds,
                schedule=cfg.schedule,  # type: ignore[arg-type]
                scope=cfg.scope,  # type: ignore[arg-type]
                desc="prospr rounds",
            )
