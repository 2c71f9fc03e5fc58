"""The pruning loss and its gradient, as the gradient-based references compute them.

SNIP, iterative SNIP and GraSP all score with the gradient of a cross-entropy over the pruning
batches; they differ only in how the batches are combined and whether logits are tempered, so
that choice is a parameter here rather than three slightly different loops.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.model_io import class_targets, logits, model_input, param_dtype
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.workspace import model_device

Reduction = Literal["sum", "mean"]


def batch_losses(model: nn.Module, data: PruningData, *, temperature: float = 1.0) -> Iterator[torch.Tensor]:
    """One cross-entropy loss (mean over the batch) per pruning batch, logits divided by ``temperature``.

    A generator, so each batch's graph is freed before the next is built (GraSP holds a
    second-order graph per batch; keeping them all alive would multiply its memory).
    """
    device, dtype = model_device(model), param_dtype(model)
    for x, y in data:
        out = logits(model(model_input(x, device, dtype)))
        if temperature != 1.0:
            out = out / temperature
        yield F.cross_entropy(out, class_targets(out, y.to(device)))


def loss_gradients(
    model: nn.Module,
    data: PruningData,
    params: Sequence[torch.Tensor],
    *,
    temperature: float = 1.0,
    reduction: Reduction = "sum",
) -> list[torch.Tensor]:
    """Gradient of the pruning loss w.r.t. ``params``, accumulated over the batches.

    ``sum`` adds the per-batch (batch-mean) gradients, as Synaptic-Flow's SNIP and GraSP do
    (one ``backward`` per batch into the same ``.grad``); ``mean`` divides by the number of
    batches, as FORCE does. The two differ by a constant factor, so rankings agree; the choice
    only matters for the raw magnitudes a feature extractor may read.
    """
    grads = [torch.zeros_like(p) for p in params]
    n = 0
    for loss in batch_losses(model, data, temperature=temperature):
        for acc, g in zip(grads, torch.autograd.grad(loss, list(params), allow_unused=True)):
            if g is not None:
                acc.add_(g.detach())
        n += 1
    if reduction == "mean" and n:
        grads = [g / n for g in grads]
    return grads
