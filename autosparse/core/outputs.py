"""A model's output as class logits, whatever the model wraps them in.

Why: every method and the trainer need one tensor of logits, but models in the wild return more
— torchvision's GoogLeNet and Inception-v3 return ``(logits, aux_logits…)`` named tuples in train
mode, Hugging Face-style models an object with ``.logits``. Reading the main logits here, once,
lets every pass (gradients, features, training) accept them instead of failing deep inside a loss.
"""

from __future__ import annotations

from typing import Any

import torch

from autosparse.core.errors import ConfigError


def logits(output: Any) -> torch.Tensor:
    """The main logits of ``output``: the tensor itself, its ``.logits``, or a tuple's first tensor."""
    if isinstance(output, torch.Tensor):
        return output
    main = getattr(output, "logits", None)
    if isinstance(main, torch.Tensor):
        return main
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise ConfigError(
        f"the model returned {type(output).__name__}, not class logits; autosparse needs a forward that returns a "
        "(batch, classes) tensor (or an object with .logits, or a tuple whose first item is the logits): wrap the "
        "model so it does"
    )


__all__ = ["logits"]
