"""Epoch checkpoints of one training, so a killed ``autosparse train --out DIR`` resumes where it stopped.

A long masked training (a ResNet for 160 epochs at 99.5% sparsity) lost every finished epoch to a
kill. :func:`~autosparse.training.trainer.train` given ``checkpoint=`` saves, after each epoch, the
weights, the optimiser and schedule state, the epoch history and both random streams (data order,
dropout), so the resumed run is bit-identical to one that was never stopped. A checkpoint carries the
fingerprint of what it trains (initial weights, masks, recipe, data); one made by another training
is refused, never silently continued or discarded.

One file, written through a temporary name (a kill leaves the previous epoch's), read with
``torch.load(weights_only=True)``: tensors, numbers and strings only, no code unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.folders import private_tmp

STATE_FILE = "train-state.pt"


@dataclass
class TrainState:
    """Where a training stood after its last finished epoch."""

    fingerprint: str
    step: int
    total_steps: int
    seconds: float  # training time spent before the kill
    history: list[dict[str, float]]
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: torch.Tensor  # torch's global generator: dropout, stochastic depth
    order_rng: torch.Tensor  # the data-order generator
    cuda_rng: list[torch.Tensor]  # every CUDA device's generator (empty on a CPU run)


def training_fingerprint(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None, train: Mapping[str, Any], data: Any
) -> str:
    """A digest of what a training computes from: initial weights, masks (and what they do to θ0), the
    recipe without its cosmetic fields, and the training data (sizes, labels, a checksum of the inputs)."""
    h = hashlib.sha256(json.dumps(dict(train), sort_keys=True, default=str).encode())
    tensors = sorted(model.state_dict().items())
    if masks is not None:
        tensors += sorted((f"mask/{n}", m) for n, m in masks.items())
        init = getattr(masks, "init", None)
        h.update(json.dumps(init.describe() if init else None, sort_keys=True, default=str).encode())
    x, y = data.x_train, data.y_train
    h.update(f"x:{tuple(x.shape)}:{float(x.double().sum()) if x.numel() else 0.0}".encode())
    tensors.append(("y", y))
    for name, t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:20]


def save_state(path: Path, state: TrainState) -> None:
    """Write ``state`` whole: a kill while writing leaves the previous epoch's file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = private_tmp(path)
    try:
        torch.save(
            {
                "fingerprint": state.fingerprint,
                "step": state.step,
                "total_steps": state.total_steps,
                "seconds": state.seconds,
                "history": state.history,
                "model": {k: v.detach().cpu() for k, v in state.model.items()},
                "optimizer": state.optimizer,
                "scheduler": state.scheduler,
                "rng": state.rng,
                "order_rng": state.order_rng,
                "cuda_rng": [t.cpu() for t in state.cuda_rng],
            },
            tmp,
        )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_state(path: Path, fingerprint: str) -> TrainState | None:
    """The state saved at ``path`` (None where there is none); one made by another training is refused."""
    if not path.is_file():
        return None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        state = TrainState(**raw)
    except Exception as exc:  # a damaged file: say so, keep it for a look
        raise ConfigError(
            f"cannot read the training checkpoint {path} ({type(exc).__name__}: {exc}); delete it to train from "
            "the start"
        ) from None
    if state.fingerprint != fingerprint:
        epoch = len(state.history)
        raise ConfigError(
            f"{path} is the checkpoint of another, unfinished training (after epoch {epoch}, step {state.step} of "
            f"{state.total_steps}): rerun that training to finish it, give another --out, or delete {path} to "
            "start this one"
        )
    return state
