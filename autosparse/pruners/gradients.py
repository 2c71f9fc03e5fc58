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

from autosparse.core.model_io import class_targets, logits, model_device, model_input, param_dtype
from autosparse.data.pruning_data import PruningData

Reduction = Literal["sum", "mean"]


def batch_losses(model: nn.Module, data: PruningData, *, temperature: float = 1.0) -> Iterator[torch.Tensor]:
    """One cross-entropy loss per pruning batch (its mean, times its size over the mean batch size),
    logits divided by ``temperature``.

    The size weight: the reference loops add batch means, so a DataLoader's short last batch (10
    images after one of 30) counted as much as a full one and the mask depended on how the same
    images were split. Weighted, the sum is the number of batches times the mean over every image;
    with equal batches every weight is exactly 1, so those masks are the reference's.
    A generator, so each batch's graph is freed before the next is built (GraSP holds a
    second-order graph per batch; keeping them all alive would multiply its memory).
    """
    device, dtype = model_device(model), param_dtype(model)
    sizes = [len(y) for _, y in data]
    mean_size = sum(sizes) / len(sizes) if sizes else 1.0
    for (x, y), size in zip(data, sizes, strict=True):
        out = logits(model(model_input(x, device, dtype)))
        if temperature != 1.0:
            out = out / temperature
        loss = F.cross_entropy(out, class_targets(out, y.to(device)))
        yield loss if size == mean_size else loss * (size / mean_size)


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
