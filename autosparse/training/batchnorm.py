"""Running BatchNorm statistics that lag the weights, recomputed before the model is tested.

Why: torchvision builds MobileNet-v3's, EfficientNet's and MNASNet's BatchNorms with momentum 0.01 or
less, an average over hundreds to thousands of steps. Under a pruning benchmark's short recipe the
weights move faster than that, so in eval mode the net tests at chance although it trained:
MobileNet-v3-small on 4000 Fashion-MNIST images, 3 epochs, 10.0% with its running statistics, 77.4%
with batch statistics and 75.9% with running statistics recomputed over the training set. Layers
with PyTorch's default momentum (0.1, every zoo net) follow the weights and are left alone, so no
result of those nets changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

from autosparse.core.model_io import model_input
from autosparse.core.seeding import seeded

log = logging.getLogger(__name__)

#: below this momentum a running average spans more steps than a short recipe has to settle it
LAGGING_MOMENTUM = 0.1


def lagging_batchnorms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers whose running statistics average over more steps than
    PyTorch's default (momentum below 0.1; ``None``, a cumulative average, counts as lagging too)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and m.track_running_stats
        and (m.momentum is None or m.momentum < LAGGING_MOMENTUM)
    ]


@torch.no_grad()
def recalibrate_lagging_batchnorm(
    model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device, dtype: torch.dtype, *, seed: int = 0
) -> int:
    """Recompute every BatchNorm's running statistics over ``x`` (the training inputs) in train
    mode when any of them lags (:func:`lagging_batchnorms`); returns how many layers lagged (0: the
    model is untouched). Weights are not changed, pruned ones stay zero."""
    lagging = lagging_batchnorms(model)
    if not lagging:
        return 0

    def batches(merge_last: bool) -> Iterator[torch.Tensor]:
        starts = list(range(0, len(x), batch_size))
        if merge_last and len(starts) > 1 and len(x) - starts[-1] == 1:  # a last batch of one joins the one before
            starts.pop()
        for a, b in zip(starts, [*starts[1:], len(x)]):
            yield model_input(x[a:b], device, dtype)

    was_training = model.training
    # on streams seeded with ``seed`` and given back: the train-mode passes draw dropout masks, which moved
    # every later draw of a training that recalibrates between epochs (eval_every_epoch, a cosmetic field),
    # and after training took them from the caller's stream, so a dropout before a BatchNorm made the
    # statistics, and the accuracy, follow whatever the caller had drawn (hunts)
    momenta = {m: m.momentum for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    try:
        with seeded(seed, device):
            update_bn(batches(False), model)  # resets, averages over every batch, restores each momentum
    except ValueError as exc:
        # a last batch of one example that a BatchNorm cannot normalise (one value per channel) ended the
        # training in a raw error; only then is it joined to the batch before, so what ran before is unchanged
        if "more than 1 value per channel" not in str(exc):
            raise
        for m, momentum in momenta.items():  # update_bn left them None when it failed
            m.momentum = momentum
        with seeded(seed, device):
            update_bn(batches(True), model)
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
    model.train(was_training)
    log.info(
        "recomputed the running BatchNorm statistics over the training set: %d layer(s) average over "
        "more steps than the recipe has (momentum < %.1f), e.g. %s",
        len(lagging),
        LAGGING_MOMENTUM,
        lagging[0],
    )
    return len(lagging)
