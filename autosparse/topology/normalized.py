"""Which prunable layers feed a normalization layer directly (conv → BatchNorm, linear → LayerNorm).

Why it matters: a normalization layer divides its input by the input's own scale, so multiplying
such a layer's weights by ρ leaves the forward pass unchanged — and shrinks the gradient the
weights receive by ρ while their norm grew by ρ, i.e. divides the effective learning rate by ρ².
Hayou et al.'s rescaling of kept weights at θ0 (:mod:`autosparse.core.init_transform`) is meant to
restore the forward variance; on a normalized layer the variance is restored anyway and only the
slow-down remains (at 99.5% sparsity ρ is ~5-10 for a 3×3 conv, a 25-100× smaller step).

Found empirically with one forward pass in eval mode (running statistics untouched): a layer is
*normalized* when the very tensor it returns is the input of a normalization module. Anything in
between (an activation, an addition with a shortcut) makes it not count — conservative: such a
layer keeps its rescaling.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from autosparse.core.layers import prunable_layers, safe_deepcopy
from autosparse.core.model_io import model_input, param_dtype

#: modules that standardise their input by its own statistics (per batch, group or sample)
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


def normalized_layers(model: nn.Module, example: torch.Tensor | Iterable[torch.Tensor]) -> set[str]:
    """Names of the prunable weights whose layer output goes straight into a normalization module.

    ``example`` is one input batch (or the positional inputs) the model accepts. The pass runs on
    a copy, as every other pass of a pruner does: the caller's model, its buffers and modes are
    left as they were (a forward counter kept in a user's model counted this probe).
    """
    if not any(isinstance(m, NORM_TYPES) for m in model.modules()):
        return set()
    model = safe_deepcopy(model)
    layers = prunable_layers(model)
    by_module: dict[int, list[str]] = {}
    for layer in layers:
        by_module.setdefault(id(layer.module), []).append(layer.name)
    produced: dict[int, list[str]] = {}
    keep_alive: list[torch.Tensor] = []  # so an id is never reused by a later tensor during the pass
    found: set[str] = set()

    def after_layer(module: nn.Module, _inputs: object, output: object) -> None:
        if isinstance(output, torch.Tensor):
            produced[id(output)] = by_module[id(module)]
            keep_alive.append(output)

    def before_norm(_module: nn.Module, inputs: tuple[object, ...]) -> None:
        if inputs and isinstance(inputs[0], torch.Tensor):
            found.update(produced.get(id(inputs[0]), ()))

    handles = []
    seen: set[int] = set()
    for layer in layers:
        if id(layer.module) not in seen:
            seen.add(id(layer.module))
            handles.append(layer.module.register_forward_hook(after_layer))
    handles += [m.register_forward_pre_hook(before_norm) for m in model.modules() if isinstance(m, NORM_TYPES)]
    device, dtype = next(model.parameters()).device, param_dtype(model)
    # in the model's dtype, as every pass feeds it: a float64 or bfloat16 net refused float32 data
    args = tuple(model_input(t, device, dtype) for t in ((example,) if isinstance(example, torch.Tensor) else example))
    model.eval()  # running statistics untouched (on the copy, too: its hooks see eval-mode outputs)
    try:
        with torch.no_grad():
            model(*args)
    finally:
        for h in handles:
            h.remove()
    return found
