"""Where a score is computed: a private copy of the model, on the model's device, with a private
random stream.

Every score function runs on a *deep copy* of the model. ``prune`` already copies, but a
scoring pruner's ``scores`` is also called directly (by the feature extractor, by tests, by
users); computing gradients or switching BatchNorm to eval on the caller's own module would
leave ``.grad`` buffers, changed running statistics or a changed train/eval mode behind.
Copying is the one rule that makes all of those impossible at once, and its cost (one copy of
the weights) is small next to a forward/backward pass. Likewise a seed must fix a score
whatever else ran before, without consuming the caller's random stream
(:func:`autosparse.core.seeding.seeded`, or :func:`generator` for a private one).
"""

from __future__ import annotations

import torch
from torch import nn

from autosparse.core.layers import safe_deepcopy


def working_copy(model: nn.Module, *, train_mode: bool | None = None, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy to score on (also of a torch-pruned model), optionally cast and put in a mode.

    ``train_mode=None`` keeps every submodule's mode as the caller left it: the meta-gradient
    methods (ProsPr, NTK-SAP) set the modes they need themselves. ``False`` is Synaptic-Flow's
    ``prune_loop`` default (BatchNorm on running statistics, Dropout off); ``True`` is what FORCE
    does (it prunes a freshly built, train-mode network). Casting only the copy keeps the
    caller's dtype untouched. Gradients are never copied, so a stale ``.grad`` cannot leak in.
    """
    work = safe_deepcopy(model)
    if dtype is not None:
        work = work.to(dtype=dtype)
    if train_mode is not None:
        work.train(train_mode)
    for p in work.parameters():
        p.grad = None
    return work


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A generator private to one pruning call, so a seed fixes the mask whatever else ran."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
