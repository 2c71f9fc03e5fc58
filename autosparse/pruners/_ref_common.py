"""Small helpers shared by the reference methods (ProsPr, NTK-SAP, robust, PHEW).

Private (underscore) so the package's auto-import skips it; nothing here registers a method.
The meta-gradient methods need to run a model with weights that are *functions* of a mask
variable (``w = θ ⊙ c``) without touching the model's own parameters, which is what
``torch.func.functional_call`` gives; these helpers map the project's prunable-weight names to
the keys ``functional_call`` expects and build the seeded generators that make a mask
reproducible.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.layers import PrunableLayer, prunable_layers
from autosparse.data.pruning_data import PruningData


def param_keys(model: nn.Module) -> dict[str, str]:
    """Prunable-weight name -> key of the trainable tensor in ``model.named_parameters()``.

    The two differ once torch pruning is attached (the trainable tensor is ``weight_orig``);
    ``functional_call`` must be handed the trainable tensor so the pruning hook still applies.
    """
    by_id = {id(p): k for k, p in model.named_parameters()}
    out: dict[str, str] = {}
    for layer in prunable_layers(model):
        key = by_id.get(id(layer.parameter))
        if key is None:  # a weight stored as a buffer cannot be differentiated through
            raise ConfigError(f"{layer.name} is not a parameter of the model; it cannot be scored")
        out[layer.name] = key
    return out


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator private to one pruning call, so a seed fixes the mask whatever else ran."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def working_copy(model: nn.Module) -> nn.Module:
    """A deep copy to score on: scores must never change the caller's weights, buffers or mode."""
    return copy.deepcopy(model)


def input_shape_of(data: PruningData | None, configured: Sequence[int] | None, method: str) -> tuple[int, ...]:
    """Input shape (without batch) from the data if given, else from the config field."""
    if data is not None:
        return tuple(int(s) for s in data.input_shape)
    if configured:
        return tuple(int(s) for s in configured)
    raise ConfigError(
        f"{method} is data-free but needs the input shape: pass data=(inputs, targets) or the "
        f"hyperparameter input_shape=(C, H, W) (e.g. input_shape=(1, 28, 28))"
    )


def effective_weight(layer: PrunableLayer) -> torch.Tensor:
    """The weight as the network uses it: ``weight_orig * weight_mask`` once torch pruning is
    attached (computed afresh, since the module's ``weight`` attribute is only refreshed by a
    forward pass), else the weight itself."""
    mask = getattr(layer.module, layer.param_name + "_mask", None)
    w = layer.parameter.detach()
    return w * mask if mask is not None else w


def layer_by_name(model: nn.Module) -> dict[str, PrunableLayer]:
    return {layer.name: layer for layer in prunable_layers(model)}
