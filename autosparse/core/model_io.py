"""A model's inputs and outputs as every pass of the library reads them.

Why: every method and the trainer feed a model batches and need one tensor of logits back, but
models in the wild differ on both sides. Inputs: a float64 (or bfloat16) model is fed float32
data, so float inputs are cast to the model's own dtype (integer inputs — token ids, uint8
images — are left as they are). Outputs: torchvision's GoogLeNet and Inception-v3 return
``(logits, aux_logits…)`` named tuples in train mode, Hugging Face-style models an object with
``.logits``. Doing both here, once, lets every pass (gradients, features, training) accept them
instead of failing deep inside a layer or a loss.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from autosparse.core.errors import AutosparseError, ConfigError


def param_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating parameter (torch's default if it has none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-free module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def model_input(
    x: torch.Tensor, device: torch.device | str, dtype: torch.dtype, *, non_blocking: bool = False
) -> torch.Tensor:
    """``x`` on ``device``, and in ``dtype`` if it is floating (see the module docstring)."""
    x = x.to(device, non_blocking=non_blocking)
    return x.to(dtype) if x.is_floating_point() else x


def logits(output: Any) -> torch.Tensor:
    """The main logits of ``output``: the tensor itself, its ``.logits`` (or ``["logits"]`` of a
    dict, as HuggingFace-style heads return), or a tuple's first tensor."""
    if isinstance(output, torch.Tensor):
        return output
    main = output.get("logits") if isinstance(output, Mapping) else getattr(output, "logits", None)
    if isinstance(main, torch.Tensor):
        return main
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ConfigError(
        f"the model returned {type(output).__name__}, not class logits; autosparse needs a forward that returns a "
        "(batch, classes) tensor (or an object with .logits, a dict with a 'logits' key, or a tuple whose first "
        "item is the logits): wrap the "
        "model so it does"
    )


#: cross-entropy's default ``ignore_index``: targets with this value are skipped, not classes
IGNORE_INDEX = -100


def class_targets(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``y``, after checking that every target is a class of ``out``'s logits.

    Why: cross-entropy on a target past the last class fails deep in torch with "Target 17 is out
    of bounds" (or silently on some devices), which says nothing about the pruning data.
    """
    if out.dim() != 2 or (y.dim() >= 1 and out.shape[0] != y.shape[0]):
        raise ConfigError(
            f"the model's logits have shape {tuple(out.shape)} for targets of shape {tuple(y.shape)}: autosparse "
            "prunes and trains classifiers whose forward returns (batch, classes) logits; wrap the model so it does "
            "(a sequence model: pool over its tokens, e.g. return out.mean(1) or out[:, 0])"
        )
    n = out.shape[-1]
    if n == 1:
        raise ConfigError(
            "the model outputs one logit: cross-entropy over a single class is always 0, so no weight scores or "
            "learns anything; a binary classifier needs 2 outputs (nn.Linear(…, 2)) with targets 0/1"
        )
    if y.numel() and not y.is_floating_point():
        lo, hi = (int(v) for v in torch.aminmax(y))  # one pass, one device sync
        if lo < 0:  # cross-entropy skips IGNORE_INDEX targets: judge the others
            kept = y[y != IGNORE_INDEX]
            lo, hi = (int(v) for v in torch.aminmax(kept)) if kept.numel() else (0, 0)
        if lo < 0 or hi >= n:
            raise ConfigError(
                f"the targets run from {lo} to {hi}, but the model outputs {n} classes: targets are "
                f"class indices 0..{n - 1}; build the model with as many outputs as classes, or remap the labels"
            )
    return y


def call_with(model: nn.Module, params: Mapping[str, torch.Tensor], args: tuple[Any, ...]) -> Any:
    """``torch.func.functional_call``, leaving the model's own parameters in place afterwards.

    Why: where one module is registered under two names (``self.head = self.layers[-1]``), torch
    2.x restores only one of them and leaves the other's weight a plain tensor on the module, so
    the next look at the model's layers no longer finds that weight (NTK-SAP raised ``KeyError``).
    """
    saved = [(m, dict(m._parameters)) for m in model.modules()]
    try:
        return functional_call(model, dict(params), args)
    finally:
        for module, own in saved:
            for name, value in own.items():
                if module._parameters.get(name) is not value:
                    module._parameters[name] = value


#: torch's words for an input the model's first layers cannot take
SHAPE_WORDS = (
    "cannot be multiplied",
    "size mismatch",
    "expected input",
    "sizes of tensors must match",
    "shape '[",
    "must match the size of tensor",  # e.g. a fixed position embedding (timm EfficientFormer) at another size
    "(unbatched) or",  # conv/pool on flattened inputs: "Expected 3D (unbatched) or 4D (batched) input"
    *(f"{k}d input (got" for k in range(1, 6)),  # BatchNorm on the wrong rank: "expected 4D input (got 3D input)"
)


def is_shape_error(exc: BaseException) -> bool:
    """Whether torch refused the inputs' shape: such a failure is the user's inputs, whichever pass met it
    first, and is reported once as :func:`prune`'s shape error."""
    if isinstance(exc, AutosparseError) or not isinstance(exc, (RuntimeError, ValueError)):
        return False  # our own errors already name their fix
    return any(w in str(exc).lower() for w in SHAPE_WORDS)


__all__ = [
    "SHAPE_WORDS",
    "call_with",
    "class_targets",
    "is_shape_error",
    "logits",
    "model_device",
    "model_input",
    "param_dtype",
]


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """``model.load_state_dict(state)`` for a state rebuilt as a plain dict (cloned tensors, a safetensors
    file), with the module versions ``model``'s own state dict records.

    Why: modules that read their version while loading (torchvision's MNASNet) refused a state without
    ``_metadata`` — IRP's θ0 copy — with "version should be set to 1 or 2" (hunt).
    """
    versioned: Any = OrderedDict(state)
    versioned._metadata = getattr(state, "_metadata", None) or getattr(model.state_dict(), "_metadata", None)
    model.load_state_dict(versioned)
