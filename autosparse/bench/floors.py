"""Floor loops: each iterative method as the shortest loop that does its work, for the speed bench.

Why: "SynFlow takes 200 s on ResNet-18" does not say whether the algorithm or the library is slow.
A floor is the same algorithm written as a minimal loop — copy the model once, one backward and
one global k-th value per round, masks applied by multiplication (Synaptic-Flow's ``prune_loop``,
with a linear-time selection over the scores still positive) — so the ratio method / floor,
measured in the same run on the same model, is what the library adds. Floors are benchmarks, not
implementations: like the reference code they prune every weight tied with the threshold, so
their masks may differ from the method's by a few tied weights, and they support the global
scope only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from autosparse.core.allocation import target_count
from autosparse.core.layers import prunable_layers
from autosparse.core.model_io import model_device
from autosparse.core.seeding import seeded
from autosparse.data.pruning_data import PruningData
from autosparse.pruners import get_pruner
from autosparse.pruners.iter_snip import IterSnipConfig
from autosparse.pruners.iterate import schedule_densities
from autosparse.pruners.ntk_sap import NTKSAPConfig
from autosparse.pruners.registry import PrunerConfig
from autosparse.pruners.synflow import SynflowConfig

FloorFn = Callable[[nn.Module, PruningData, float, PrunerConfig, int], list[torch.Tensor]]


def global_keep(scores: list[torch.Tensor], density: float) -> list[torch.Tensor]:
    """Keep the weights scoring above the global k-th value; ties with it are pruned (the reference's rule).

    The k-th value is found among the positive scores only, by numpy's linear-time selection:
    a pruned weight scores exactly 0 (its weight is 0) and can never be kept again, and a
    selection over every weight — ``torch.kthvalue`` as in Synaptic-Flow, or numpy over a vector
    that is 90% zeros — cost 0.4-1.7 s per round on ResNet-18's 11M scores, more than the
    round's backward pass: a floor that slow would flatter any method measured against it.
    Scores are non-negative (|θ ⊙ g| and the like).
    """
    flat = torch.cat([s.detach().reshape(-1) for s in scores]).cpu()
    keep = target_count(flat.numel(), density)
    positive = flat[flat > 0]
    threshold = 0.0
    if positive.numel() > keep:
        drop = positive.numel() - keep  # prune the `drop` smallest positive scores (and every zero)
        threshold = float(np.partition(positive.numpy(), drop - 1)[drop - 1])
    return [s > threshold for s in scores]


def apply(params: list[torch.Tensor], keep: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, m in zip(params, keep, strict=True):
            p.mul_(m)


def synflow_floor(
    model: nn.Module, data: PruningData, density: float, cfg: PrunerConfig, seed: int
) -> list[torch.Tensor]:
    """SynFlow: |θ ⊙ ∂R/∂θ| of the absolute-valued float64 network on one all-ones input."""
    assert isinstance(cfg, SynflowConfig)
    work = copy.deepcopy(model).eval()
    if cfg.float64:
        work = work.double()
    with torch.no_grad():
        for t in work.state_dict(keep_vars=True).values():
            if t.is_floating_point():
                t.abs_()
    params = [layer.parameter for layer in prunable_layers(work)]
    x = torch.ones((1, *(cfg.input_shape or data.input_shape)), dtype=params[0].dtype, device=params[0].device)
    keep = [torch.ones_like(p, dtype=torch.bool) for p in params]
    for d in schedule_densities(density, cfg.rounds, cfg.schedule):  # type: ignore[arg-type]
        grads = torch.autograd.grad(work(x).sum(), params)
        keep = global_keep([(p.detach() * g).abs() for p, g in zip(params, grads, strict=True)], d)
        apply(params, keep)
    return keep


def iter_snip_floor(
    model: nn.Module, data: PruningData, density: float, cfg: PrunerConfig, seed: int
) -> list[torch.Tensor]:
    """Iterative SNIP: |θ ⊙ g| with g the loss gradient summed over the pruning batches."""
    assert isinstance(cfg, IterSnipConfig)
    work = copy.deepcopy(model).train(cfg.train_mode)
    params = [layer.parameter for layer in prunable_layers(work)]
    keep = [torch.ones_like(p, dtype=torch.bool) for p in params]
    for d in schedule_densities(density, cfg.rounds, cfg.schedule):  # type: ignore[arg-type]
        grads = [torch.zeros_like(p) for p in params]
        for x, y in data:
            for acc, g in zip(grads, torch.autograd.grad(F.cross_entropy(work(x), y), params), strict=True):
                acc.add_(g)
        keep = global_keep([(p.detach() * g).abs() for p, g in zip(params, grads, strict=True)], d)
        apply(params, keep)
    return keep


def ntk_sap_floor(
    model: nn.Module, data: PruningData, density: float, cfg: PrunerConfig, seed: int
) -> list[torch.Tensor]:
    """NTK-SAP (``reinit="layer_std"``): |∂ ‖f(θ ⊙ c) − f((θ + εz) ⊙ c)‖² / ∂c| over re-sampled
    weights and noise inputs, batch-norm statistics from a clean pass per draw."""
    assert isinstance(cfg, NTKSAPConfig)
    work = copy.deepcopy(model)
    by_id = {id(p): k for k, p in work.named_parameters()}
    layers = prunable_layers(work)
    keys = [by_id[id(layer.parameter)] for layer in layers]
    params = [layer.parameter.detach() for layer in layers]
    stds = [float(p.std()) for p in params]  # reinit="layer_std", the default
    others = {k: p.detach() for k, p in work.named_parameters() if k not in keys}
    norms = [m for m in work.modules() if isinstance(m, _BatchNorm)]
    for bn in norms:
        bn.momentum = 1.0
    n = cfg.num_samples or 10 * data.num_classes
    shape = data.input_shape
    gen = torch.Generator().manual_seed(seed)
    dev = params[0].device
    keep = [torch.ones_like(p, dtype=torch.bool) for p in params]
    for d in schedule_densities(density, cfg.rounds, cfg.schedule):  # type: ignore[arg-type]
        cs = [m.to(p.dtype).requires_grad_(True) for m, p in zip(keep, params, strict=True)]
        grads = [torch.zeros_like(p) for p in params]
        for _ in range(cfg.resamples):
            for size in [min(cfg.batch_size, n - i) for i in range(0, n, cfg.batch_size)]:
                theta = [torch.randn(p.shape, generator=gen).to(dev) * s for p, s in zip(params, stds, strict=True)]
                x = torch.randn((size, *shape), generator=gen).to(dev)
                clean = {**others, **{k: t * c for k, t, c in zip(keys, theta, cs, strict=True)}}
                noisy = {
                    **others,
                    **{
                        k: (t + cfg.epsilon * torch.randn(t.shape, generator=gen).to(dev)) * c
                        for k, t, c in zip(keys, theta, cs, strict=True)
                    },
                }
                if norms:
                    with torch.no_grad():
                        for bn in norms:
                            bn.reset_running_stats()
                        work.train()
                        functional_call(work, clean, (x,))
                work.eval()
                diff = functional_call(work, clean, (x,)) - functional_call(work, noisy, (x,))
                for acc, g in zip(grads, torch.autograd.grad(diff.pow(2).sum(), cs), strict=True):
                    acc.add_(g)
        keep = global_keep([g.abs() * m for g, m in zip(grads, keep, strict=True)], d)
    return keep


#: the iterative methods that have a floor loop; ProsPr is one-shot by default and has none
FLOORS: dict[str, FloorFn] = {"synflow": synflow_floor, "iter_snip": iter_snip_floor, "ntk_sap": ntk_sap_floor}


def floor_config(method: str, hparams: dict[str, object]) -> PrunerConfig | None:
    """The method's typed config if it has a floor loop for it (global scope, more than one round)."""
    if method not in FLOORS:
        return None
    cfg = get_pruner(method)(**hparams).config
    if (
        cfg.scope != "global"
        or int(getattr(cfg, "rounds", 1)) <= 1
        or getattr(cfg, "reinit", "layer_std") != "layer_std"
    ):
        return None
    return cfg


def run_floor(
    method: str, model: nn.Module, data: PruningData, density: float, cfg: PrunerConfig, seed: int
) -> list[torch.Tensor]:
    """The method's floor loop under a seeded, private random stream; returns the final masks."""
    with seeded(seed, model_device(model)):
        return FLOORS[method](model, data, density, cfg, seed)


def kept(masks: list[torch.Tensor]) -> int:
    return sum(int(m.sum()) for m in masks)
