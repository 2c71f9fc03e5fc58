"""Masked training at the cost of dense training: zero pruned weights once, mask their gradients.

Why not torch's pruning hooks during training: ``weight_orig * weight_mask`` is recomputed on
every forward (one more elementwise op and autograd node per layer per step, ~12% of an epoch on
LeNet), and ``nn.MultiheadAttention`` never calls its ``out_proj``, so the hook there goes stale.
Here the pruned weights are set to zero once and their gradients are multiplied by the mask after
each backward: the kept weights see exactly the gradients, weight decay and momentum they would
under the hooks (``g * 1`` and ``w * 1`` are exact), and the pruned ones stay exactly zero
because their gradient, decay and momentum are all zero. So the trajectory is bit-identical to
hook-based masking, at the cost of one multiply per weight per step.
"""

from __future__ import annotations

import torch
from torch import nn

from autosparse.core.layers import prunable_layers
from autosparse.core.masks import Masks


class MaskedParameters:
    """The prunable parameters of a model held under masks for the length of a training run."""

    def __init__(self, model: nn.Module, masks: Masks) -> None:
        masks.validate(model)
        self.params: list[torch.Tensor] = []
        self.masks: list[torch.Tensor] = []
        seen: set[int] = set()
        for layer in prunable_layers(model):
            p = layer.parameter
            if id(p) in seen:  # a tied weight is masked once
                continue
            seen.add(id(p))
            self.params.append(p)
            self.masks.append(masks[layer.name].to(device=p.device, dtype=p.dtype))
        with torch.no_grad():
            for p, m in zip(self.params, self.masks, strict=True):
                p.mul_(m)

    def zero_pruned(self) -> None:
        """Set the pruned weights to zero again.

        Why: a diverging run's NaN gradient times the mask's 0 is still NaN, so pruned weights can
        turn NaN (a fill in every step instead of the multiply costs 12x as much); the trainer calls
        this once at the end of a run whose weights are not all finite, so a diverged run ends on its
        "training diverged" warning (and a NaN that reached only pruned positions, on nothing), not on a
        false "pruned weights leaked"."""
        with torch.no_grad():
            for p, m in zip(self.params, self.masks, strict=True):
                p.masked_fill_(m == 0, 0.0)

    def mask_gradients(self) -> None:
        """Zero the gradients of pruned weights (call between ``backward`` and ``optimizer.step``)."""
        for p, m in zip(self.params, self.masks, strict=True):
            if p.grad is not None:
                p.grad.mul_(m)
