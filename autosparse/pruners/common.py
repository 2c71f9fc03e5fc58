"""Helpers the classic pruners share: a safe working copy, the loss over the pruning batches,
linearisation for SynFlow, and score post-processing.

Every score function here runs on a *deep copy* of the model. ``base.prune`` already copies,
but ``Pruner.scores`` is also called directly (by the feature extractor, by tests, by users);
computing gradients or switching BatchNorm to eval on the caller's own module would leave
``.grad`` buffers, changed running statistics or a changed train/eval mode behind. Copying is
the one rule that makes all of those impossible at once, and its cost (one copy of the weights)
is small next to a forward/backward pass.

This module is excluded from the pruner auto-import (see ``autosparse/pruners/__init__.py``):
it registers nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.layers import prunable_layers, safe_deepcopy
from autosparse.data.pruning_data import PruningData
from autosparse.pruners.registry import Scores

Reduction = Literal["sum", "mean"]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameter-free module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def working_copy(model: nn.Module, *, train_mode: bool, dtype: torch.dtype | None = None) -> nn.Module:
    """A deep copy to score on, in train or eval mode, optionally cast to ``dtype``.

    The reference code (Synaptic-Flow's ``prune_loop``) puts the whole model in eval mode
    unless ``--prune-train-mode`` is given, so BatchNorm uses its running statistics and
    Dropout is off; ``train_mode=True`` is what FORCE does (it prunes a freshly built,
    train-mode network). Casting only the copy keeps the caller's dtype untouched.
    """
    work = safe_deepcopy(model)
    if dtype is not None:
        work = work.to(dtype=dtype)
    work.train(train_mode)
    for p in work.parameters():
        p.grad = None
    return work


def named_prunable(model: nn.Module) -> tuple[list[str], list[torch.Tensor]]:
    """Names and trainable tensors (``weight_orig`` when torch pruning is applied) in layer order."""
    layers = prunable_layers(model)
    params = [layer.parameter for layer in layers]
    for p in params:
        p.requires_grad_(True)
    return [layer.name for layer in layers], params


def require_data(data: Any, method: str) -> PruningData:
    """The pruning data, or an error that says how to provide it."""
    pdata = PruningData.coerce(data)
    if pdata is None:
        raise ConfigError(
            f"{method} needs data: pass data=(inputs, targets) or a DataLoader "
            "(autosparse.data.pruning_batch(dataset) gives the standard one)"
        )
    return pdata


def _inputs(x: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = x.to(device)
    return x.to(dtype) if x.is_floating_point() else x


def _param_dtype(model: nn.Module) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def batch_losses(model: nn.Module, data: PruningData, *, temperature: float = 1.0) -> Iterator[torch.Tensor]:
    """One cross-entropy loss (mean over the batch) per pruning batch, logits divided by ``temperature``.

    A generator, so each batch's graph is freed before the next is built (GraSP holds a
    second-order graph per batch; keeping them all alive would multiply its memory).
    """
    device, dtype = model_device(model), _param_dtype(model)
    for x, y in data:
        out = model(_inputs(x, device, dtype))
        if temperature != 1.0:
            out = out / temperature
        yield F.cross_entropy(out, y.to(device))


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


def to_scores(names: Sequence[str], tensors: Sequence[torch.Tensor]) -> Scores:
    """Detached, contiguous, CPU, floating-point score tensors keyed by parameter name."""
    out: Scores = {}
    for name, t in zip(names, tensors, strict=True):
        t = t.detach()
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        out[name] = t.cpu().contiguous()
    return out


def normalize_by_sum(scores: Scores, *, absolute_sum: bool = False, eps: float = 0.0) -> Scores:
    """Divide every score by the sum over all layers (or by |sum| + eps).

    Both references normalise this way (SNIP by the plain sum of non-negative scores, GraSP
    by |sum| + 1e-10 so a signed score keeps its sign). Rankings are unchanged; what changes
    is that the values become comparable across networks, which is what a learned scorer's
    features need. A zero sum (e.g. an all-zero gradient) is left unscaled rather than
    turned into NaNs.
    """
    total = sum(float(s.to(torch.float64).sum()) for s in scores.values())
    norm = (abs(total) + eps) if absolute_sum else total
    if norm == 0.0 or not torch.isfinite(torch.tensor(norm)):
        return scores
    return {n: s / norm for n, s in scores.items()}


@contextmanager
def linearized(model: nn.Module) -> Iterator[nn.Module]:
    """Replace every floating parameter and buffer by its absolute value; restore on exit.

    SynFlow's reference takes ``abs`` of the whole ``state_dict`` (weights, biases, BatchNorm
    affine parameters and running statistics), which turns the network into a positive,
    linear map of an all-ones input; we do the same. Values are restored from saved copies
    (not by multiplying signs back), so restoration is exact.
    """
    saved: dict[str, torch.Tensor] = {}
    state = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for name, t in state.items():
            if t.is_floating_point():
                saved[name] = t.detach().clone()
                t.abs_()
    try:
        yield model
    finally:
        with torch.no_grad():
            for name, t in state.items():
                if name in saved:
                    t.copy_(saved[name])


@contextmanager
def seeded(seed: int, model: nn.Module | None = None) -> Iterator[None]:
    """Fork the RNG and seed it, so stochastic layers (Dropout in train mode) give the same
    scores for the same seed without disturbing the caller's random stream."""
    devices: list[int] = []
    if model is not None:
        dev = model_device(model)
        if dev.type == "cuda":
            devices = [dev.index if dev.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def input_shape_of(config_shape: Sequence[int] | None, data: PruningData | None, model: nn.Module) -> tuple[int, ...]:
    """The per-sample input shape for data-free scoring: config, then data, then ``model.input_shape``."""
    if config_shape is not None:
        return tuple(int(d) for d in config_shape)
    if data is not None:
        return data.input_shape
    shape = getattr(model, "input_shape", None)
    if shape is not None:
        return tuple(int(d) for d in shape)
    raise ConfigError(
        f"cannot tell the input shape of {type(model).__name__}: pass input_shape=(C, H, W) "
        "(e.g. prune(model, 'synflow', density=0.01, input_shape=(1, 28, 28))) or pruning data"
    )


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def check_rounds(rounds: int, schedule: str) -> None:
    if int(rounds) != rounds or rounds < 1:
        raise ConfigError(f"rounds must be a positive integer, got {rounds}")
    if schedule not in ("exp", "linear"):
        raise ConfigError(f"unknown schedule {schedule!r}; use 'exp' or 'linear'")
