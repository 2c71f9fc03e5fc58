"""Which tensor a score is about, once ``torch.nn.utils.prune`` may be attached.

A torch-pruned layer has three candidates — ``weight_orig`` (trainable), ``weight_mask`` and the
cached ``weight`` (refreshed only by a forward pass) — and each method needs a different one:
gradients flow to the trainable tensor, ``functional_call`` must be handed it by its key, and a
magnitude-like score must see the weight the network actually computes with.
"""

from __future__ import annotations

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.layers import PrunableLayer, prunable_layers


def named_prunable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    """Names and trainable tensors (``weight_orig`` when torch pruning is applied) in layer order,
    with gradients switched on so a score can differentiate through them."""
    layers = prunable_layers(model)
    params = [layer.parameter for layer in layers]
    for p in params:
        p.requires_grad_(True)
    return [layer.name for layer in layers], params


def param_keys(model: nn.Module) -> dict[str, str]:
    """Prunable-weight name -> key of the trainable tensor in ``model.named_parameters()``.

    The two differ once torch pruning is attached (the trainable tensor is ``weight_orig``);
    ``torch.func.functional_call`` must be handed the trainable tensor so the pruning hook still
    applies.
    """
    by_id = {id(p): k for k, p in model.named_parameters()}
    out: dict[str, str] = {}
    for layer in prunable_layers(model):
        key = by_id.get(id(layer.parameter))
        if key is None:  # a weight stored as a buffer cannot be differentiated through
            raise ConfigError(f"{layer.name} is not a parameter of the model; it cannot be scored")
        out[layer.name] = key
    return out


def effective_weight(layer: PrunableLayer) -> torch.Tensor:
    """The weight the network computes with: ``weight_orig * weight_mask`` on a torch-pruned layer.

    Computed afresh from the trainable tensor and the mask rather than read from the cached
    ``weight`` attribute, which torch only refreshes on the next forward. A weight pruned
    earlier thus scores zero, as it does under every gradient-based score.
    """
    w = layer.parameter.detach()
    mask = getattr(layer.module, layer.param_name + "_mask", None)
    return w * mask.to(w.dtype) if mask is not None else w
