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
import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autosparse.core.errors import ConfigError
from autosparse.core.folders import private_tmp, replace_into

STATE_FILE = "train-state.pt"
#: held by `autosparse train --out` while it trains into a folder; never deleted (autosparse.core.claims)
LOCK_FILE = ".train.lock"


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
    described: dict[str, Any]  # the settings the fingerprint hashed, to name what differs when it does not match
    threads: int = 0  # torch's intra-op threads the epochs ran with (0: a checkpoint from before it was kept)
    start_loss: float = float("nan")  # the first step's loss, what divergence is measured against (NaN: not kept)


def training_fingerprint(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None, described: Mapping[str, Any], data: Any
) -> str:
    """A digest of what a training computes from: ``described`` (the recipe without its cosmetic fields,
    and whatever the caller knows of the task: model options that leave no trace in the weights, such as
    a ViT's heads), the model's structure and initial weights, the masks and what they do to θ0 (factors,
    branch scales), and the training and test data (sizes, labels, a checksum of the inputs)."""
    h = hashlib.sha256(json.dumps(dict(described), sort_keys=True, default=str).encode())
    h.update(re.sub(r" at 0x[0-9a-fA-F]+", "", repr(model)).encode())  # a lambda's address differs per process
    tensors = sorted(model.state_dict().items())
    if masks is not None:
        tensors += sorted((f"mask/{n}", m) for n, m in masks.items())
        init = getattr(masks, "init", None)
        if init is not None:
            h.update(json.dumps(init.describe(), sort_keys=True, default=str).encode())
            tensors += sorted((f"factor/{n}", f) for n, f in init.factors.items())
            h.update(json.dumps(dict(init.branch_scale), sort_keys=True).encode())
    for part in ("train", "test"):
        x, y = getattr(data, f"x_{part}"), getattr(data, f"y_{part}")
        total = float(x.sum(dtype=torch.float64)) if x.numel() else 0.0  # no float64 copy of the inputs
        h.update(f"x_{part}:{tuple(x.shape)}:{total!r}".encode())
        tensors.append((f"y_{part}", y))
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
        fields = {k: getattr(state, k) for k in TrainState.__dataclass_fields__}
        fields["model"] = {k: v.detach().cpu() for k, v in state.model.items()}
        fields["cuda_rng"] = [t.cpu() for t in state.cuda_rng]
        with open(tmp, "wb") as f:  # through Python's file: a full disk then shows as ENOSPC, not a C++ stream error
            torch.save(fields, f)
        replace_into(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _alive(pid: str) -> bool:
    """Whether the process that named a temporary file still runs (unknown: assume it does)."""
    try:
        os.kill(int(pid), 0)
    except ValueError:
        return True
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _why_unreadable(exc: Exception) -> str:
    """torch's reason, without its advice to load the file with ``weights_only=False``: for a damaged
    or foreign file that advice is wrong, and it would unpickle whatever code the file holds (helper)."""
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc):
        return "it is not a file of tensors and numbers alone, which is all a checkpoint of autosparse's holds"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first.split('. ')[0].rstrip('.')}"


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def load_state(path: Path, fingerprint: str, described: Mapping[str, Any]) -> TrainState | None:
    """The state saved at ``path`` (None where there is none); one made by another training is refused."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a save killed midway: its writer is gone
        if not _alive(stale.name.removeprefix(f".{path.name}.").split(".")[0]):
            stale.unlink(missing_ok=True)
    if path.is_dir():  # the whole training ran, then removing its state failed with IsADirectoryError (helper)
        raise ConfigError(
            f"checkpoint {path} is a folder; give the path of a file there, e.g. {path / 'train_state.pt'}"
        )
    if not path.is_file():
        return None
    try:
        with warnings.catch_warnings():  # torch's note on a foreign pickle protocol: the error below says it all
            warnings.simplefilter("ignore")
            state = TrainState(**torch.load(path, map_location="cpu", weights_only=True))
    except Exception as exc:
        raise ConfigError(f"the training checkpoint {path} is damaged ({_why_unreadable(exc)}); delete it") from None
    if state.fingerprint != fingerprint:
        old = state.described or {}
        # by their JSON text: 2 and 2.0 hash apart (a Python int, hashed as a float since), yet compared equal (review)
        changed = sorted(k for k in {*old, *described} if _json(old.get(k)) != _json(described.get(k)))
        what = (
            f"it differs in {', '.join(changed)}"
            if changed
            else "it differs in the initial weights, the masks or the data"
        )
        raise ConfigError(
            f"{path} is the checkpoint of another, unfinished training (after epoch {len(state.history)}, step "
            f"{state.step} of {state.total_steps}; {what}): rerun that training to finish it, give another --out, "
            f"or delete {path} to start this one"
        )
    return state
