"""NTK-SAP — Neural Tangent Kernel Spectrum-Aware Pruning (Wang, Li & Sun, ICLR 2023).

A mask that trains well should keep the *whole* NTK eigenspectrum large, not one direction of
it. The NTK's trace is estimated by finite differences: ``‖f(x; w) − f(x; w + δ)‖²`` with a
small Gaussian parameter perturbation ``δ = ε·z`` on the kept weights approximates
``ε² · tr(J Jᵀ)``. Its gradient w.r.t. a multiplicative mask variable ``c`` (``w = θ ⊙ c``) is the
saliency, i.e. ``|Σ_s θ_s ⊙ ∂/∂w ‖f(x; θ_s ⊙ c) − f(x; (θ_s + ε z) ⊙ c)‖²|``. Because the NTK of
a mask, not of one draw of weights, is what matters, the weights ``θ_s`` are *re-sampled for
every noise batch* ("multi-sampling") and the inputs ``x`` are Gaussian noise: the method never
looks at data (only at its shape). Like SynFlow it prunes in rounds with an exponential
schedule through :func:`autosparse.pruners.iterate.iterate`.

Defaults follow the reference code (github.com/YiteWang/NTK-SAP, ``main.py``,
``Pruners/pruners.py``, ``scripts/run.sh``): ε = 0.01, one re-sampling pass R = 1 (their
CIFAR-10 script uses 5), T = 20 rounds, exponential schedule, Gaussian inputs shaped like the
data and as many as their pruning set (10 × number of classes) in batches of 256. As in the
reference, only the prunable weights are re-sampled and perturbed (biases and norm parameters
keep their initial values), the perturbation is applied before the mask (``(θ + εz) ⊙ c``, so
pruned weights stay pruned), and batch-norm layers use statistics of the noise batch
recomputed for every draw of weights: running statistics are reset, one no-grad train-mode
pass with momentum 1 fills them from the unperturbed network, then both the unperturbed and the
perturbed network are evaluated in eval mode with those same statistics.

Re-sampling the weights: the reference calls the model's own ``_initialize_weights``
(Kaiming-normal). A generic model has no such method, so by default each prunable weight is
redrawn from ``N(0, std(θ₀ of that layer)²)`` — the same scale as whatever initialiser built
the model — with ``reinit="kaiming_normal"`` reproducing the reference exactly and
``reinit="none"`` scoring ``θ₀`` itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from autosparse.core.errors import ConfigError
from autosparse.core.masks import Masks
from autosparse.core.model_io import call_with, logits, model_device, param_dtype
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.inputs import input_shape_of
from autosparse.pruners.iterate import iterate
from autosparse.pruners.registry import PrunerConfig, ScoringPruner, register
from autosparse.pruners.scores import Scores
from autosparse.pruners.weights import param_keys
from autosparse.pruners.workspace import generator, working_copy

REINITS = ("layer_std", "kaiming_normal", "none")


@dataclass
class NTKSAPConfig(PrunerConfig):
    rounds: int = 20  # T; reference scripts/run.sh --prune-epochs 20
    schedule: str = "exp"  # reference main.py --compression-schedule exponential
    epsilon: float = 0.01  # reference main.py --ntksap_epsilon 0.01
    resamples: int = 1  # R; reference main.py --ntksap_R 1 (5 in its CIFAR-10 script)
    num_samples: int | None = None  # noise inputs per pass; None = 10 × outputs (reference prune_dataset_ratio=10)
    batch_size: int = 256  # reference main.py --prune-batch-size 256
    input_shape: tuple[int, ...] | None = None  # used when no data is given (shape only; data is never read)
    reinit: str = "layer_std"  # layer_std | kaiming_normal (reference) | none


def layer_stds(model: nn.Module) -> dict[str, float]:
    """Standard deviation of each prunable weight tensor: the scale its initialiser drew from."""
    keys = param_keys(model)
    named = dict(model.named_parameters())
    out = {}
    for n, k in keys.items():
        w = named[k].detach().float()
        out[n] = float(w.std()) if w.numel() > 1 else float(w.abs().mean())
    return out


def _randn(shape: Sequence[int], gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Gaussian draws in float32, then in ``dtype``: drawn in the model's dtype, the seed's stream
    differed between a float32 and a float64 model, and so did 167 of 221 kept weights (helper)."""
    return torch.randn(tuple(shape), generator=gen, device=device, dtype=torch.float32).to(dtype)


def _sample_weights(
    base: dict[str, torch.Tensor], std: dict[str, float], how: str, gen: torch.Generator
) -> dict[str, torch.Tensor]:
    out = {}
    for name, w in base.items():
        if how == "none":
            out[name] = w
        elif how == "layer_std":
            out[name] = _randn(w.shape, gen, w.device, w.dtype) * std[name]
        else:  # kaiming_normal, fan_in, gain sqrt(2): torch's default for nn.init.kaiming_normal_
            fan_in = w[0].numel() if w.dim() > 1 else 1
            scale = math.sqrt(2.0 / fan_in)
            out[name] = _randn(w.shape, gen, w.device, w.dtype) * scale
    return out


def ntk_sap_scores(
    model: nn.Module,
    masks: Masks | None,
    input_shape: Sequence[int],
    *,
    gen: torch.Generator,
    stds: dict[str, float] | None = None,
    epsilon: float = 0.01,
    resamples: int = 1,
    num_samples: int = 100,
    batch_size: int = 256,
    reinit: str = "layer_std",
) -> Scores:
    """One round of NTK-SAP saliency for ``model`` under ``masks`` (``model`` is modified: pass a copy).

    ``stds`` are the per-layer scales to re-sample weights with (``reinit="layer_std"``); pass
    those of the *unpruned* model, since the model given here may have its pruned weights zeroed.
    """
    if reinit not in REINITS:
        raise ConfigError(f"unknown reinit {reinit!r}; use one of {', '.join(REINITS)}")
    if resamples < 1 or num_samples < 1 or batch_size < 1:
        raise ConfigError("resamples, num_samples and batch_size must all be >= 1")
    if not 0 < epsilon < math.inf:  # written so NaN fails too (it made every score NaN), and inf (hunt)
        raise ConfigError(f"epsilon must be a finite number > 0, got {epsilon}")
    device = model_device(model)
    keys = param_keys(model)
    named = dict(model.named_parameters())
    base = {n: named[k].detach() for n, k in keys.items()}
    dtype = next(iter(base.values())).dtype  # noise inputs in the model's precision
    std = stds if stds is not None else layer_stds(model)
    cvars = {
        n: (masks[n].to(device=device, dtype=w.dtype) if masks is not None else torch.ones_like(w)).requires_grad_(True)
        for n, w in base.items()
    }
    others = {k: p.detach() for k, p in named.items() if k not in keys.values()}
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    for bn in norms:
        bn.momentum = 1.0  # the stats pass below must *replace* the running statistics
    sizes = [min(batch_size, num_samples - i) for i in range(0, num_samples, batch_size)]
    grads = {n: torch.zeros_like(w) for n, w in base.items()}
    for _ in range(resamples):
        for size in sizes:
            theta = _sample_weights(base, std, reinit, gen)
            x = _randn((size, *input_shape), gen, device, dtype)
            clean = {**others, **{keys[n]: theta[n] * cvars[n] for n in theta}}
            noisy = {
                **others,
                **{
                    keys[n]: (theta[n] + epsilon * _randn(t.shape, gen, device, t.dtype)) * cvars[n]
                    for n, t in theta.items()
                },
            }
            if norms:
                with torch.no_grad():
                    for bn in norms:
                        bn.reset_running_stats()
                    model.train()
                    call_with(model, clean, (x,))
            model.eval()
            diff = logits(call_with(model, clean, (x,))) - logits(call_with(model, noisy, (x,)))
            jac_approx = diff.reshape(size, -1).pow(2).sum()
            step = torch.autograd.grad(jac_approx, [cvars[n] for n in base], allow_unused=True)
            for n, g in zip(base, step, strict=True):
                if g is not None:  # None: a layer the forward never uses
                    grads[n] += g.detach()
    out = {}
    for n, g in grads.items():
        s = g.abs()
        if masks is not None:
            s = s * masks[n].to(s.device)
        out[n] = s
    return out


def _num_outputs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """The model's class count: cross-entropy's class axis (dim 1) of its logits on zeros, in the dtype of
    the weights the noise inputs meet (as :func:`ntk_sap_scores` draws them)."""
    model.eval()
    keys, named = param_keys(model), dict(model.named_parameters())
    dtype = named[next(iter(keys.values()))].dtype if keys else param_dtype(model)
    with torch.no_grad():
        out = logits(model(torch.zeros((2, *input_shape), device=model_device(model), dtype=dtype)))
    return int(out.shape[1] if out.dim() >= 2 else out.shape[-1])


@register("ntk_sap")
class NTKSAP(ScoringPruner):
    own_inputs = True
    Config = NTKSAPConfig
    data_dependent = False
    description = (
        "NTK-SAP (Wang et al. 2023): data-free saliency of the finite-difference NTK trace, averaged over "
        "re-sampled weights and Gaussian inputs, pruned in rounds"
    )

    def _plan(self, model: nn.Module, data: PruningData | None) -> tuple[tuple[int, ...], int]:
        cfg: NTKSAPConfig = self.config  # type: ignore[assignment]
        shape = input_shape_of(self.name, cfg.input_shape, data, model, data_first=True)
        if cfg.num_samples is not None:
            return shape, int(cfg.num_samples)
        # the model's own output count, not the batch's labels: a data-free method's mask must not follow
        # them (one class in the batch gave a tenth of the samples; ignored labels a negative count)
        return shape, 10 * _num_outputs(working_copy(model), shape)

    def _round(
        self,
        model: nn.Module,
        masks: Masks | None,
        shape: tuple[int, ...],
        n: int,
        gen: torch.Generator,
        stds: dict[str, float],
    ) -> Scores:
        cfg: NTKSAPConfig = self.config  # type: ignore[assignment]
        return ntk_sap_scores(
            model,
            masks,
            shape,
            gen=gen,
            stds=stds,
            epsilon=cfg.epsilon,
            resamples=cfg.resamples,
            num_samples=n,
            batch_size=cfg.batch_size,
            reinit=cfg.reinit,
        )

    def scores(self, model: nn.Module, data: PruningData | None, *, seed: int = 0) -> Scores:
        """One round (no pruning yet) of the saliency; :meth:`masks` iterates it."""
        shape, n = self._plan(model, data)
        return self._round(working_copy(model), None, shape, n, generator(seed, model_device(model)), layer_stds(model))

    def masks(self, model: nn.Module, data: PruningData | None, density: float, *, seed: int = 0) -> Masks:
        cfg: NTKSAPConfig = self.config  # type: ignore[assignment]
        shape, n = self._plan(model, data)
        gen = generator(seed, model_device(model))
        stds = layer_stds(model)
        return iterate(
            lambda m, masks: self._round(m, masks, shape, n, gen, stds),
            model,
            density,
            cfg.rounds,
            schedule=cfg.schedule,  # type: ignore[arg-type]
            scope=cfg.scope,  # type: ignore[arg-type]
            desc="ntk_sap rounds",
        )
